//! The HTTP side: routes, the access check in front of all of them, and progress events.

use crate::access::{Access, Refusal, Visit, TOKEN_COOKIE};
use crate::model::{JobForm, RunState};
use crate::server::LocalAddr;
use crate::{pages, Backend};
use axum::extract::{ConnectInfo, Extension, Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

const CSS: &str = include_str!("../assets/panel.css");
const JS: &str = include_str!("../assets/panel.js");
const HISTORY_CSS: &str = include_str!("../assets/history.css");
const HISTORY_JS: &str = include_str!("../assets/history.js");
/// uPlot, the History chart's library: from npm at the version `assets/vendor/package-lock.json`
/// pins, put in OUT_DIR by `build.rs`.
const UPLOT_JS_BODY: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.js"));
const UPLOT_CSS_BODY: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.css"));
/// Its addresses (relative, like every link) carry its version: cached for a year, and a new
/// version is a new address.
pub(crate) const UPLOT_JS: &str = concat!("vendor/uplot-", env!("PWSYNC_UPLOT_VERSION"), ".js");
pub(crate) const UPLOT_CSS: &str = concat!("vendor/uplot-", env!("PWSYNC_UPLOT_VERSION"), ".css");
/// A year: the library's address changes with its version.
const VERSIONED: &str = "public, max-age=31536000, immutable";

struct Shared {
    backend: Arc<dyn Backend>,
    access: Access,
}

type S = State<Arc<Shared>>;

/// The panel's routes, all at one level so relative links work under any prefix.
pub fn router(backend: Arc<dyn Backend>, access: Access) -> Router {
    let shared = Arc::new(Shared { backend, access });
    Router::new()
        .route("/", get(status_page))
        .route("/history", get(history_page))
        .route("/jobs", get(jobs_page))
        .route("/log", get(log_page))
        .route("/check", post(check))
        .route("/dry-run", post(dry_run))
        .route("/apply", post(apply))
        .route("/resume", post(resume))
        .route("/events", get(events))
        .route("/panel.css", get(|| async { asset("text/css", CSS) }))
        .route("/panel.js", get(|| async { asset("text/javascript", JS) }))
        .route(
            "/history.css",
            get(|| async { asset("text/css", HISTORY_CSS) }),
        )
        .route(
            "/history.js",
            get(|| async { asset("text/javascript", HISTORY_JS) }),
        )
        .route("/history/series.json", get(series))
        .route(
            concat!("/vendor/uplot-", env!("PWSYNC_UPLOT_VERSION"), ".js"),
            get(|| async { versioned("text/javascript", UPLOT_JS_BODY) }),
        )
        .route(
            concat!("/vendor/uplot-", env!("PWSYNC_UPLOT_VERSION"), ".css"),
            get(|| async { versioned("text/css", UPLOT_CSS_BODY) }),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), admit))
        .with_state(shared)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    cached(content_type, "max-age=3600", body)
}

fn versioned(content_type: &'static str, body: &'static str) -> Response {
    cached(content_type, VERSIONED, body)
}

fn cached(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// The access rules in front of every route, and the headers every answer gets.
async fn admit(
    State(s): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(LocalAddr(local)): Extension<LocalAddr>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let bearer = header_str(headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let cookie =
        header_str(headers, header::COOKIE.as_str()).and_then(|c| cookie_value(c, TOKEN_COOKIE));
    let query = req.uri().query().and_then(|q| query_value(q, "token"));
    let visit = Visit {
        peer: peer.ip(),
        local,
        host: header_str(headers, header::HOST.as_str()),
        post: req.method() == Method::POST,
        origin: header_str(headers, header::ORIGIN.as_str()),
        referer: header_str(headers, header::REFERER.as_str()),
        forwarded_host: header_str(headers, "x-forwarded-host"),
        bearer: bearer.as_deref(),
        cookie: cookie.as_deref(),
        query: query.as_deref(),
    };
    match s.access.admit(&visit) {
        Ok(()) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
                ),
            );
            h.entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
            // The token in the address once, then as a cookie: links need not carry it.
            if let Some(t) = query.filter(|_| s.access.token_required() && cookie.is_none()) {
                if let Ok(v) =
                    HeaderValue::from_str(&format!("{TOKEN_COOKIE}={t}; HttpOnly; SameSite=Strict"))
                {
                    h.insert(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(Refusal::Token) => (
            StatusCode::UNAUTHORIZED,
            pages::refused(
                "This panel needs its token (web.token): open it once as …/?token=YOUR_TOKEN.",
            ),
        )
            .into_response(),
        Err(Refusal::NotIngress) => (
            StatusCode::FORBIDDEN,
            pages::refused(
                "This panel is served through Home Assistant's ingress: open it from HA's sidebar.",
            ),
        )
            .into_response(),
        // Plain text, nothing of the request echoed: the page that sent it learns nothing.
        Err(Refusal::Host) => plain(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "pwsync's panel does not answer to this name: open it as http://127.0.0.1:{}/ \
                 on its machine, or add the name to web.hosts (PWSYNC_WEB__HOSTS).\n",
                local.port()
            ),
        ),
        Err(Refusal::CrossOrigin) => plain(
            StatusCode::FORBIDDEN,
            "This form was sent from another site's page: pwsync's panel accepts forms from its \
             own pages only.\n"
                .into(),
        ),
    }
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn cookie_value(cookies: &str, name: &str) -> Option<String> {
    cookies.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find_map(|(k, v)| (k == name && !v.is_empty()).then(|| v.into_owned()))
}

async fn status_page(State(s): S) -> Response {
    pages::status(&s.backend.status().await, s.access.csrf()).into_response()
}

async fn history_page(State(s): S) -> Response {
    pages::history(&s.backend.history().await, s.access.csrf()).into_response()
}

#[derive(Deserialize)]
struct SeriesQuery {
    #[serde(default)]
    statistic: String,
}

/// One statistic's chart data from the last check, as JSON.
async fn series(State(s): S, Query(q): Query<SeriesQuery>) -> Response {
    let history = s.backend.history().await;
    let found = history
        .checked
        .as_ref()
        .and_then(|c| c.series.iter().find(|x| x.statistic == q.statistic));
    match found.map(|x| serde_json::to_vec(&**x)) {
        Some(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Some(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        None => plain(
            StatusCode::NOT_FOUND,
            "No chart for this statistic: the last check did not look at it (or none has run).\n"
                .into(),
        ),
    }
}

async fn jobs_page(State(s): S) -> Response {
    // A job still running shows its progress here, whoever started it.
    let p = s.backend.progress().borrow().clone();
    let running = (p.state == RunState::Running).then_some(p.run);
    jobs_view(&s, None, running, None).await
}

/// The Jobs page with the saved Energy preferences to restore.
async fn jobs_view(
    s: &Shared,
    plan: Option<&crate::model::Plan>,
    running: Option<u64>,
    error: Option<&str>,
) -> Response {
    let backups = s.backend.backups().await;
    pages::jobs(s.access.csrf(), plan, running, error, &backups).into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    id: Option<u64>,
}

async fn log_page(State(s): S, Query(q): Query<LogQuery>) -> Response {
    pages::log(&s.backend.log().await, q.id).into_response()
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

fn bad_csrf() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::refused(
            "This form is out of date (pwsync restarted?): reload the page and try again.",
        ),
    )
        .into_response()
}

/// Where a POST sends the browser next: under HA's ingress, the path HA gives; else relative.
fn see_other(headers: &HeaderMap, page: &str) -> Response {
    let location = match header_str(headers, "x-ingress-path") {
        Some(base) => format!("{}/{page}", base.trim_end_matches('/')),
        None => page.to_string(),
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn check(State(s): S, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    if !s.access.csrf_ok(&f.csrf) {
        return bad_csrf();
    }
    match s.backend.check().await {
        Ok(()) => see_other(&headers, "history"),
        Err(e) => jobs_view(&s, None, None, Some(&e)).await,
    }
}

async fn dry_run(State(s): S, Form(form): Form<JobForm>) -> Response {
    if !s.access.csrf_ok(&form.csrf) {
        return bad_csrf();
    }
    match s.backend.dry_run(&form).await {
        Ok(plan) => jobs_view(&s, Some(&plan), None, None).await,
        Err(e) => jobs_view(&s, None, None, Some(&e)).await,
    }
}

#[derive(Deserialize)]
struct ApplyForm {
    #[serde(default)]
    csrf: String,
    plan: u64,
}

async fn apply(State(s): S, Form(f): Form<ApplyForm>) -> Response {
    if !s.access.csrf_ok(&f.csrf) {
        return bad_csrf();
    }
    match s.backend.apply(f.plan).await {
        Ok(run) => jobs_view(&s, None, Some(run), None).await,
        Err(e) => jobs_view(&s, None, None, Some(&e)).await,
    }
}

async fn resume(State(s): S, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    if !s.access.csrf_ok(&f.csrf) {
        return bad_csrf();
    }
    match s.backend.resume().await {
        Ok(()) => see_other(&headers, "jobs"),
        Err(e) => jobs_view(&s, None, None, Some(&e)).await,
    }
}

/// The progress of jobs as server-sent events: the current state at once, then every change.
async fn events(State(s): S) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.backend.progress();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let p = rx.borrow_and_update().clone();
        let event = Event::default()
            .event("progress")
            .json_data(&p)
            .unwrap_or_else(|_| Event::default().comment("unserialisable"));
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::Hosts;

    fn series(statistic: &str) -> Arc<ChartSeries> {
        Arc::new(ChartSeries {
            statistic: statistic.into(),
            time_zone: "Europe/Berlin".into(),
            hours: HourColumns {
                start: 1_735_689_600,
                step: 3600,
                ha: vec![0.25, f32::NAN, 1.5],
                influx: vec![0.25, 0.125, f32::NAN],
            },
            days: DayColumns {
                start: vec![1_735_689_600],
                ha: vec![1.75],
                influx: vec![0.375],
            },
        })
    }

    async fn panel() -> String {
        let view = HistoryView {
            checked: Some(CheckedView {
                at: "now".into(),
                by: "test".into(),
                from: "a".into(),
                to: "b".into(),
                problems: vec![ProblemRow {
                    hour: "2025-01-01 02:00 CET".into(),
                    statistic: "sensor.b".into(),
                    kind: "spike".into(),
                    found: "9".into(),
                    expected: "1".into(),
                    cause: "c".into(),
                    start: 1_735_693_200,
                    end: 1_735_696_800,
                }],
                series: vec![series("sensor.a"), series("sensor.b")],
            }),
        };
        let backend = crate::fixed::Fixed::new(Default::default(), view, Vec::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let router = router(Arc::new(backend), Access::new(None, None, Hosts::default()));
        tokio::spawn(crate::serve(listener, router, std::future::pending()));
        base
    }

    async fn get(url: String) -> reqwest::Response {
        reqwest::get(url).await.unwrap()
    }

    #[tokio::test]
    async fn a_statistics_chart_data_is_compact_json_with_null_where_a_side_has_no_value() {
        let base = panel().await;
        let r = get(format!("{base}history/series.json?statistic=sensor.b")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let text = r.text().await.unwrap();
        assert!(
            text.contains(r#""hours":{"start":1735689600,"step":3600,"ha":[0.25,null,1.5],"influx":[0.25,0.125,null]}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""statistic":"sensor.b","time_zone":"Europe/Berlin""#),
            "{text}"
        );
        assert!(text.contains(r#""days":{"start":[1735689600],"ha":[1.75],"influx":[0.375]}"#));
        let unknown = get(format!("{base}history/series.json?statistic=sensor.c")).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_history_page_loads_the_embedded_chart_library_and_marks_each_problems_hours() {
        let base = panel().await;
        let page = get(format!("{base}history")).await.text().await.unwrap();
        // Relative, versioned, and the data is not in the page.
        assert!(page.contains(&format!(r#"src="{UPLOT_JS}""#)), "{page}");
        assert!(page.contains(&format!(r#"href="{UPLOT_CSS}""#)), "{page}");
        assert!(!page.contains("0.125"), "the series is in the page");
        assert!(
            page.contains(
                r#"data-statistic="sensor.b" data-start="1735693200" data-end="1735696800""#
            ),
            "{page}"
        );
        // The problem's statistic is shown first.
        assert!(
            page.contains(r#"<option value="sensor.b" selected>"#),
            "{page}"
        );
        for (path, kind) in [(UPLOT_JS, "javascript"), (UPLOT_CSS, "css")] {
            let r = get(format!("{base}{path}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains(kind));
            let cache = r.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                cache.contains("max-age=31536000") && cache.contains("immutable"),
                "{cache}"
            );
            let body = r.text().await.unwrap();
            assert!(
                body.contains("uPlot") || body.contains(".u-"),
                "{path}: {}",
                &body[..80]
            );
        }
        let js = get(format!("{base}history.js")).await;
        assert!(js.text().await.unwrap().contains("pwsyncChart"));
    }

    #[test]
    fn query_and_cookie_values_are_found_and_decoded() {
        assert_eq!(
            query_value("a=1&token=x%2By+z", "token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(query_value("token", "token"), None);
        assert_eq!(
            cookie_value("a=b; pwsync_token=abc", TOKEN_COOKIE).as_deref(),
            Some("abc")
        );
        assert_eq!(cookie_value("pwsync_token_x=abc", TOKEN_COOKIE), None);
    }
}
