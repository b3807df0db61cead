//! `ember history` in a real headless browser (Debian's chromium): the report of a job run
//! under mpirun loads nothing from the network, draws the DAG and the timeline (a
//! screenshot with the stages' colours in it), has one element per stage and executor, and
//! a 1,000-task job's report stays small and renders quickly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, mpirun, run, skip};
use ember::events::{Event, read_events};

/// The browser, or `None` after recording why the suite is skipped.
fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(name.to_string());
        }
    }
    skip(
        "history (browser)",
        "chromium not found: `make deps` installs Debian's chromium",
    );
    None
}

/// The browser with no network: every host name resolves to nothing and no proxy is
/// tried, so a reference to anything outside the file cannot load.
fn browser(chromium: &str, html: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--no-proxy-server",
    ]);
    cmd.args(args).arg(format!("file://{}", html.display()));
    cmd
}

/// Runs WordCount on 3 ranks with `partitions`; writes its report. Returns (log, report).
fn report_of_wordcount(dir: &Path, lines: &str, partitions: &str) -> (PathBuf, PathBuf) {
    let logs = dir.join("events");
    let args = [
        "--generate-lines",
        lines,
        "--partitions",
        partitions,
        "--event-log",
        logs.to_str().unwrap(),
    ];
    run(
        mpirun(3, &bin("wordcount"), &args),
        Duration::from_secs(180),
    )
    .assert_ok();
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let html = dir.join("report.html");
    let mut cmd = Command::new(bin("ember"));
    cmd.args([
        "history",
        log.to_str().unwrap(),
        "--output",
        html.to_str().unwrap(),
    ]);
    run(cmd, Duration::from_secs(60)).assert_ok();
    (log, html)
}

/// Nothing in the page points outside it: no URL, no `src`, no stylesheet link or import.
fn assert_self_contained(html: &str) {
    for outside in [
        "http://", "https://", "src=", "<link", "@import", "<script", "//fonts",
    ] {
        assert!(!html.contains(outside), "the report refers to {outside:?}");
    }
}

/// (pixels not white, distinct colours, pixels of `rgb`) of a PNG.
fn pixels(png_path: &Path, rgb: [u8; 3]) -> (usize, usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "an RGB screenshot: {:?}", info.color_type);
    let mut colours = std::collections::HashSet::new();
    let (mut ink, mut of_rgb) = (0, 0);
    for px in buf[..info.buffer_size()].chunks(step) {
        let c = [px[0], px[1], px[2]];
        colours.insert(c);
        ink += usize::from(c != [255, 255, 255]);
        of_rgb += usize::from(c == rgb);
    }
    (ink, colours.len(), of_rgb)
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn the_report_renders_offline_with_every_stage_and_executor() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (log, html_path) = report_of_wordcount(dir.path(), "20000", "4");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_self_contained(&html);

    let events = read_events(&log).unwrap();
    let stages: usize = events
        .iter()
        .map(|e| match e {
            Event::JobStart { stages, .. } => stages.len(),
            _ => 0,
        })
        .sum();
    let Some(Event::ApplicationStart { executors, .. }) = events.first() else {
        panic!("no application_start")
    };

    let out = run(
        browser(&chromium, &html_path, &["--dump-dom"]),
        Duration::from_secs(60),
    );
    out.assert_ok();
    let dom = out.stdout;
    assert_eq!(
        count(&dom, "class=\"stage-node\""),
        stages,
        "one DAG node per stage"
    );
    assert_eq!(
        count(&dom, "class=\"executor-row\""),
        executors.len(),
        "one timeline row per executor"
    );
    for e in executors {
        assert!(
            dom.contains(&format!("id=\"executor-{}\"", e.id)),
            "executor {}",
            e.id
        );
    }
    assert!(dom.contains("id=\"dag-0-0\"") && dom.contains("id=\"dag-0-1\""));
    assert_eq!(
        count(&dom, "class=\"task\""),
        8,
        "a bar per task (4 map, 4 reduce)"
    );

    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    run(
        browser(&chromium, &html_path, &[&arg, "--window-size=1200,1000"]),
        Duration::from_secs(60),
    )
    .assert_ok();
    let (ink, colours, first_stage) = pixels(&shot, [0x4e, 0x79, 0xa7]);
    assert!(ink > 20_000, "the page is nearly blank: {ink} pixels drawn");
    assert!(colours > 20, "{colours} colours");
    assert!(
        first_stage > 2_000,
        "stage 0's colour fills its DAG box and bars: {first_stage} pixels"
    );
}

#[test]
fn a_thousand_task_report_is_small_and_renders_in_seconds() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (log, html_path) = report_of_wordcount(dir.path(), "50000", "500");
    let tasks = read_events(&log)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::TaskEnd { .. }))
        .count();
    assert_eq!(tasks, 1000, "500 map and 500 reduce tasks");
    let size = std::fs::metadata(&html_path).unwrap().len();
    assert!(size < 3 << 20, "the report is {size} bytes");

    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    let started = Instant::now();
    run(
        browser(&chromium, &html_path, &[&arg, "--window-size=1200,1000"]),
        Duration::from_secs(60),
    )
    .assert_ok();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("1000-task report: {size} bytes, browser start + render + screenshot {seconds:.2} s");
    // Generous: chromium's own start takes most of it on a loaded 2-core machine.
    assert!(seconds < 30.0, "rendering took {seconds:.1} s");
    assert!(
        pixels(&shot, [0x4e, 0x79, 0xa7]).2 > 1_000,
        "the report is drawn"
    );
}
