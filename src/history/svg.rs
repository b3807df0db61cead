//! Inline SVG drawings of the report: a job's stage DAG, the task timeline, distributions.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::history::model::{App, JobRun};
use crate::history::{Colours, escape};

const BOX_W: usize = 170;
const BOX_H: usize = 54;
const GAP_X: usize = 60;
const GAP_Y: usize = 18;
/// Room above the boxes for edges that jump over columns.
const TOP: usize = 40;

/// A job's stages as boxes in columns by depth, arrows from each parent to its readers.
pub fn dag(job: &JobRun, colours: &Colours) -> String {
    let mut depth: BTreeMap<u32, usize> = BTreeMap::new();
    for s in &job.stages {
        let d = s
            .info
            .parents
            .iter()
            .filter_map(|p| depth.get(&p.0))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(s.info.stage.0, d);
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut place: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for s in &job.stages {
        let d = depth[&s.info.stage.0];
        let row = rows.entry(d).or_insert(0);
        place.insert(
            s.info.stage.0,
            (d * (BOX_W + GAP_X) + 4, *row * (BOX_H + GAP_Y) + TOP),
        );
        *row += 1;
    }
    let width = (rows.len().max(1)) * (BOX_W + GAP_X);
    let height = rows.values().max().copied().unwrap_or(1) * (BOX_H + GAP_Y) + TOP;
    let mut out = format!(
        "<svg class=\"dag\" width=\"{width}\" height=\"{height}\">\
         <defs><marker id=\"arrow-{0}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>",
        job.job
    );
    for s in &job.stages {
        let (x, y) = place[&s.info.stage.0];
        for p in &s.info.parents {
            if let Some(&(px, py)) = place.get(&p.0) {
                let (x1, y1, y2) = (px + BOX_W, py + BOX_H / 2, y + BOX_H / 2);
                // A parent columns away (cached links read by every iteration) arcs over
                // the boxes between; a neighbour gets a straight arrow.
                let lift = if x1 + GAP_X < x { y1.min(y2) - 4 } else { 0 };
                let _ = write!(
                    out,
                    "<path d=\"M{x1},{y1} C{},{} {},{} {x},{y2}\" fill=\"none\" stroke=\"#555\" marker-end=\"url(#arrow-{})\"/>",
                    x1 + GAP_X,
                    y1 - lift,
                    x - GAP_X,
                    y2 - lift,
                    job.job
                );
            }
        }
    }
    for s in &job.stages {
        let (x, y) = place[&s.info.stage.0];
        let status = s.status();
        let fill = match status {
            "done" => colours.of(job.job, s.info.stage.0),
            "failed" => "#f4a6a6".to_string(),
            _ => "#e4e4e4".to_string(),
        };
        let kind = if s.info.kind == "result" {
            "result"
        } else {
            "shuffle map"
        };
        let _ = write!(
            out,
            "<g class=\"stage-node\" id=\"dag-{j}-{st}\" data-job=\"{j}\" data-stage=\"{st}\" data-status=\"{status}\">\
             <title>{lineage}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333\"/>\
             <text x=\"{tx}\" y=\"{ty1}\" font-weight=\"bold\">stage {st} ({kind})</text>\
             <text x=\"{tx}\" y=\"{ty2}\">{tasks} task(s), {status}</text></g>",
            j = job.job,
            st = s.info.stage.0,
            lineage = escape(&s.info.lineage),
            tx = x + 8,
            ty1 = y + 20,
            ty2 = y + 40,
            tasks = s.info.partitions,
        );
    }
    out.push_str("</svg>");
    out
}

/// Every task on a row per executor thread, grouped by executor, coloured by stage; failed
/// attempts hatched red. Time runs from the application's start to its end.
pub fn timeline(app: &App, colours: &Colours) -> String {
    const W: f64 = 1100.0;
    const LABEL: f64 = 110.0;
    const ROW: usize = 12;
    let t0 = app.start_us;
    let span = (app.end_us.unwrap_or(app.last_us).saturating_sub(t0)).max(1) as f64;
    let x = |t: u64| LABEL + (t.saturating_sub(t0) as f64 / span) * (W - LABEL - 10.0);
    let mut threads: BTreeMap<usize, usize> = app
        .executors
        .iter()
        .map(|e| (e.id.rank(), e.threads.max(1)))
        .collect();
    for (_, _, t) in app.tasks() {
        let n = threads.entry(t.executor).or_insert(1);
        *n = (*n).max(t.timing.thread as usize + 1);
    }
    let mut y = 0;
    let mut rows = String::new();
    for (&executor, &n) in &threads {
        let height = n * ROW;
        let _ = write!(
            rows,
            "<g class=\"executor-row\" id=\"executor-{executor}\" data-executor=\"{executor}\">\
             <rect x=\"0\" y=\"{y}\" width=\"{W}\" height=\"{height}\" fill=\"{}\"/>\
             <text x=\"4\" y=\"{}\">executor {executor}</text>",
            if executor % 2 == 0 {
                "#f7f7f7"
            } else {
                "#ffffff"
            },
            y + ROW.min(height) - 2
        );
        for (job, stage, t) in app.tasks().filter(|(_, _, t)| t.executor == executor) {
            let (x0, x1) = (x(t.timing.start_us), x(t.timing.end_us));
            let fill = match t.failure {
                Some(_) => "#d62728".to_string(),
                None => colours.of(job.job, stage.info.stage.0),
            };
            let _ = write!(
                rows,
                "<rect class=\"task\" x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>job {} stage {} task {} attempt {}: {:.3} s{}</title></rect>",
                y + t.timing.thread as usize * ROW + 1,
                (x1 - x0).max(1.0),
                ROW - 2,
                job.job,
                stage.info.stage.0,
                t.partition,
                t.attempt + 1,
                t.seconds(),
                t.failure
                    .as_deref()
                    .map(|f| format!(", failed: {}", escape(f)))
                    .unwrap_or_default()
            );
        }
        rows.push_str("</g>");
        y += height + 4;
    }
    // Scales down to the window's width (a laptop after scp), never up.
    format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {W} {h}\" width=\"100%\" style=\"max-width:{W}px\">{rows}\
         <text x=\"{LABEL}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2} s</text></svg>",
        y + 12,
        W - 10.0,
        y + 12,
        span / 1e6,
        h = y + 16,
    )
}

/// `values` sorted largest first as bars: a straggler is a tall bar on the left, skew a
/// steep slope.
pub fn bars(values: &[f64], colour: &str, unit: &str) -> String {
    const W: f64 = 220.0;
    const H: f64 = 36.0;
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let max = sorted
        .first()
        .copied()
        .unwrap_or(0.0)
        .max(f64::MIN_POSITIVE);
    let step = W / sorted.len().max(1) as f64;
    let mut out = format!(
        "<svg class=\"dist\" width=\"{W}\" height=\"{H}\"><title>largest {max:.3} {unit}</title>"
    );
    for (i, v) in sorted.iter().enumerate() {
        let h = (v / max * (H - 2.0)).max(0.5);
        let _ = write!(
            out,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{h:.2}\" fill=\"{colour}\"/>",
            i as f64 * step,
            H - h,
            step.max(0.3)
        );
    }
    out.push_str("</svg>");
    out
}
