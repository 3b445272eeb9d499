//! The dashboard: server-rendered pages over the same store the query API
//! reads, with every view's state in its URL so that an email or a chat link
//! opens exactly that view.
//!
//! - [`params`]: the URL state of a view (time range, filters, metric), parsed
//!   once with errors that name the parameter, and written back into links.
//! - [`session`]: sign-in with a query token → signed cookie; CSRF tokens.
//! - [`layout`]: the page shell, the filter form, values and ratings as text.
//! - [`svg`]: sparklines, share bars, histograms and the series chart.
//! - [`assets`]: the embedded stylesheet and script.
//! - [`overview`], [`pages`], [`series`], [`flows`], [`alerts`]: the views.
//! - [`export`]: the CSV and JSON answers every view also gives.

pub mod alerts;
pub mod assets;
pub mod export;
pub mod flows;
pub mod layout;
pub mod overview;
pub mod pages;
pub mod params;
pub mod series;
pub mod session;
pub mod svg;

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::http::AppState;
use layout::{Chrome, Nav};
use params::ViewParams;
use session::Session;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::view))
        .route("/pages", get(pages::view))
        .route("/series", get(series::view))
        .route("/flows", get(flows::list))
        .route("/flows/runs", get(flows::runs))
        .route("/runs/{run_id}", get(flows::run))
        .route("/runs/{run_id}/artifacts/{name}", get(flows::artifact))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/silences", post(alerts::create_silence))
        .route("/silences/{id}/expire", post(alerts::expire_silence))
        .route("/signin", get(signin_form).post(signin))
        .route("/signin/status", get(signin_status))
        .route("/signout", post(signout))
        .route("/assets/{name}", get(assets::serve))
        // The app reads ingest bodies with limits of their own and disables
        // axum's; a sign-in or alert form is small, so cap every form here.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
}

/// What a view handler has once the request may see the page.
pub struct Viewer {
    pub params: ViewParams,
    pub session: Option<Session>,
    pub now_ms: i64,
}

impl Viewer {
    pub fn chrome<'a>(&self, title: &'a str, nav: Nav) -> Chrome<'a> {
        Chrome {
            title,
            nav,
            signed_in: self.session.is_some(),
            live: false,
            exports: None,
            now_ms: self.now_ms,
        }
    }
}

/// Let the request through (signed in, or a public dashboard), or send the
/// browser to sign-in with the page it asked for; a bad parameter is a 400
/// page that names it.
pub fn admit(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    raw: &HashMap<String, String>,
) -> Result<Viewer, Box<Response>> {
    let now = state.store.clock.now_ms();
    let session = state.sessions.verify(headers, now);
    if session.is_none() && !state.config.public_dashboard {
        let next = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        return Err(Box::new(
            Redirect::to(&params::link(
                "/signin",
                [("next", next.as_str())].into_iter(),
            ))
            .into_response(),
        ));
    }
    match ViewParams::parse(raw, now) {
        Ok(params) => Ok(Viewer {
            params,
            session,
            now_ms: now,
        }),
        Err(e) => Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            session.is_some(),
            now,
            &e.0,
        ))),
    }
}

/// Handlers take a [`Viewer`]: the request is admitted (see [`admit`]) before
/// the handler runs, or answered with the redirect or error page instead.
impl axum::extract::FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Viewer, Response> {
        let raw = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|e| {
                error_page(
                    StatusCode::BAD_REQUEST,
                    false,
                    state.store.clock.now_ms(),
                    &format!("The link's query string could not be read: {e}"),
                )
            })?
            .0;
        admit(state, &parts.headers, &parts.uri, &raw).map_err(|r| *r)
    }
}

pub fn error_page(status: StatusCode, signed_in: bool, now_ms: i64, message: &str) -> Response {
    let chrome = Chrome {
        title: match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST => "That link has a problem",
            _ => "Something went wrong",
        },
        nav: Nav::None,
        signed_in,
        live: false,
        exports: None,
        now_ms,
    };
    (status, html_response(layout::message(&chrome, message))).into_response()
}

/// What a view read by id (an alert, a run): the data, or the page to answer
/// with instead — 404 with `missing` when there was none, the store failure
/// page on an error.
pub fn found<T>(
    v: &Viewer,
    read: Result<Option<T>, crate::store::StoreError>,
    missing: &str,
) -> Result<T, Box<Response>> {
    match read {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(Box::new(error_page(
            StatusCode::NOT_FOUND,
            v.session.is_some(),
            v.now_ms,
            missing,
        ))),
        Err(e) => Err(Box::new(store_failed(e, v.now_ms))),
    }
}

/// A store failure as a page: the operator finds the cause in the log.
pub fn store_failed(e: crate::store::StoreError, now_ms: i64) -> Response {
    tracing::error!(error = %e, "dashboard read failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        true,
        now_ms,
        "The database could not be read just now; try again in a moment. The collector's log says why.",
    )
}

pub fn html_response(markup: Markup) -> Response {
    let mut r = Html(markup.into_string()).into_response();
    let h = r.headers_mut();
    // Pages hold data behind a sign-in: never in a shared cache.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[derive(Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
}

fn signin_page(
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
    can_sign_in: bool,
) -> Response {
    let body = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · vitalsign" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::href("style.css"));
                script src=(assets::href("live.js")) defer {}
            }
            body {
                main #main .signin {
                    h1 { "Sign in to vitalsign" }
                    @if let Some(p) = problem { p.message role="alert" { (p) } }
                    @if can_sign_in {
                        form method="post" action="/signin" data-signin-next=(next) {
                            input type="hidden" name="next" value=(next);
                            label {
                                "Query token"
                                input type="password" name="token" autocomplete="current-password" required autofocus;
                            }
                            button type="submit" { "Sign in" }
                        }
                        p.hint { "Any token listed in the collector's " code { "query_tokens" } " signs you in." }
                    } @else {
                        p.message role="alert" {
                            "This collector has no query token configured, so nobody can sign in. Set "
                            code { "query_tokens" } " (or " code { "public_dashboard = true" } ") in its config."
                        }
                    }
                }
            }
        }
    };
    (status, html_response(body)).into_response()
}

async fn signin_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SigninQuery>,
) -> Response {
    let next = session::safe_next(q.next.as_deref());
    if state
        .sessions
        .verify(&headers, state.store.clock.now_ms())
        .is_some()
    {
        return Redirect::to(&next).into_response();
    }
    signin_page(StatusCode::OK, &next, None, state.sessions.can_sign_in)
}

/// Whether the browser's cookie is a live session. A page reached from a mail
/// client arrives without the SameSite=Strict cookie; the sign-in page asks
/// this (a same-site request, so the cookie comes along) and goes on at once.
async fn signin_status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = state
        .sessions
        .verify(&headers, state.store.clock.now_ms())
        .is_some();
    let mut r = axum::Json(serde_json::json!({ "signed_in": signed_in })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
pub struct SigninForm {
    token: Option<String>,
    next: Option<String>,
}

async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let next = session::safe_next(form.next.as_deref());
    let presented = form.token.unwrap_or_default();
    let valid = !presented.is_empty()
        && state
            .config
            .query_tokens
            .iter()
            .any(|t| !t.is_empty() && t.matches(presented.trim()));
    if !valid {
        tracing::info!("dashboard sign-in refused: unknown token");
        return signin_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not one of this collector's query tokens. Check it and try again."),
            state.sessions.can_sign_in,
        );
    }
    let (cookie, _) = state.sessions.issue(state.store.clock.now_ms());
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        state.sessions.set_cookie(&cookie, &headers),
    );
    tracing::info!("dashboard sign-in");
    r
}

async fn signout(State(state): State<AppState>) -> Response {
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, state.sessions.clear_cookie());
    r
}
