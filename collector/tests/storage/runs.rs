//! Probe runs and their artifacts.

use vitalsign_collector::store::{NewRun, Store, StoreError, WriteOutcome};

use crate::*;

contract!(a_run_is_stored_once_and_its_artifact_round_trips);

pub async fn a_run_is_stored_once_and_its_artifact_round_trips(store: &Store) {
    let run = fixture_run();
    let id = run.run_id.clone();
    let new_run = || NewRun {
        run: run.clone(),
        page_view_groups: Vec::new(),
        received_ms: T0 + 5_000,
    };
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::AlreadyStored
    );
    let runs = store
        .recent_runs(Some("checkout".into()), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let (stored, received_ms) = store.run(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.run_id.as_str(), received_ms),
        (id.as_str(), T0 + 5_000)
    );

    // The artifact: refused before its run exists or with the wrong hash;
    // stored once; read back byte for byte.
    match store
        .record_artifact(artifact("r-none", b"test", TEST_SHA256))
        .await
    {
        Err(StoreError::NotFound(m)) => assert!(m.contains("upload the run first"), "{m}"),
        other => panic!("an artifact of an unknown run: {other:?}"),
    }
    match store.record_artifact(artifact(&id, b"tset", "00")).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("an artifact with the wrong hash: {other:?}"),
    }
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::AlreadyStored
    );
    assert_eq!(
        store.artifact(&id, "step-2-failure.png").await.unwrap(),
        Some(("image/png".to_string(), b"test".to_vec()))
    );
    assert_eq!(
        store.stored_artifacts(&id).await.unwrap(),
        [("step-2-failure.png".to_string(), "image/png".to_string(), 4)]
    );
    assert_eq!(store.artifact(&id, "other.png").await.unwrap(), None);
}
