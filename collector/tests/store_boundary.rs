//! The storage boundary (DESIGN.md, Storage): every SQL statement of the
//! collector lives under `collector/src/store/`, and the rest of the
//! collector reaches storage only through the `store::Storage` trait, never a
//! connection, so a second backend (PostgreSQL) replaces one directory. This
//! reads the sources and names every line outside it that holds an SQL
//! statement or names `rusqlite`.

use std::path::{Path, PathBuf};

/// Words that start (or shape) an SQL statement; matched case-sensitively as
/// the code base writes SQL in capitals, at a word boundary.
const SQL: [&str; 9] = [
    "SELECT ",
    "INSERT INTO",
    "INSERT OR ",
    "DELETE FROM",
    "UPDATE ",
    "CREATE TABLE",
    "CREATE INDEX",
    "PRAGMA ",
    "DROP TABLE",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of `source` that hold SQL inside a string literal (a `"` before the
/// keyword on the same line, or a line continuing a multi-line literal).
fn sql_lines(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_string = false;
    for (number, line) in source.lines().enumerate() {
        let code = line.trim_start();
        let starts_inside = in_string;
        // Track whether the line ends inside a string literal (quotes not escaped).
        let mut escaped = false;
        for c in line.chars() {
            match c {
                '\\' if in_string => escaped = !escaped,
                '"' if !escaped => in_string = !in_string,
                _ => escaped = false,
            }
        }
        if code.starts_with("//") {
            continue;
        }
        for keyword in SQL {
            let Some(at) = line.find(keyword) else {
                continue;
            };
            let quoted = starts_inside || line[..at].contains('"');
            let word_start = at == 0 || !line.as_bytes()[at - 1].is_ascii_alphanumeric();
            if quoted && word_start {
                found.push((number + 1, line.trim().to_string()));
                break;
            }
        }
    }
    found
}

/// Every line `find` picks out of a collector source file outside `store/`,
/// as `path:line: text`.
fn outside_the_store(find: fn(&str) -> Vec<(usize, String)>) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let store = src.join("store");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&store)) {
        let source = std::fs::read_to_string(file).unwrap();
        for (line, text) in find(&source) {
            offenders.push(format!("{}:{line}: {text}", file.display()));
        }
    }
    offenders
}

fn store_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/store")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn no_sql_outside_the_store_module() {
    let offenders = outside_the_store(sql_lines);
    assert!(
        offenders.is_empty(),
        "SQL outside collector/src/store/ (move it behind the store's functions):\n{}",
        offenders.join("\n")
    );
    // The check itself sees SQL where it is: the store has plenty.
    assert!(!sql_lines(&store_file("writer.rs")).is_empty());
}

/// Lines of `source`, comments aside, that name the SQLite driver: a
/// connection type, an import, an error type.
fn driver_lines(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !code.starts_with("//") && line.contains("rusqlite")
        })
        .map(|(number, line)| (number + 1, line.trim().to_string()))
        .collect()
}

#[test]
fn no_sqlite_driver_outside_the_store_module() {
    let offenders = outside_the_store(driver_lines);
    assert!(
        offenders.is_empty(),
        "rusqlite outside collector/src/store/ (call a store::Storage method instead):\n{}",
        offenders.join("\n")
    );
    // The check itself sees the driver where it is used.
    assert!(!driver_lines(&store_file("sqlite.rs")).is_empty());
}

#[test]
fn the_driver_check_skips_comments_only() {
    let source = "
        // rusqlite in a comment is prose
        fn f(c: &rusqlite::Connection) {}
        use rusqlite::params;
    ";
    let lines: Vec<usize> = driver_lines(source).into_iter().map(|(n, _)| n).collect();
    assert_eq!(lines, vec![3, 4]);
}

#[test]
fn the_check_finds_sql_in_one_line_and_multi_line_literals_only() {
    let source = r#"
        // SELECT in a comment is prose
        let a = "SELECT 1";
        let b = format!(
            "UPDATE outbox SET status = 'sent'
             WHERE seq = ?1"
        );
        let c = "no sql here";
        let d = "
            DELETE FROM runs";
        let e = CONNECTION_SELECT_LIMIT;
    "#;
    let lines: Vec<usize> = sql_lines(source).into_iter().map(|(n, _)| n).collect();
    assert_eq!(lines, vec![3, 5, 10]);
}
