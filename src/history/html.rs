//! The report page: summary, executors, timeline, jobs with their DAGs and stages,
//! shuffles and failures.

use std::fmt::Write;

use crate::config::ByteSize;
use crate::history::model::{App, JobRun, StageRun};
use crate::history::{Colours, escape, svg, time};

const STYLE: &str = "body{font:13px system-ui,sans-serif;margin:16px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:24px}h3{font-size:14px}\
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;\
text-align:right;vertical-align:middle}th{background:#eee}td.l,th.l{text-align:left}\
.failed{color:#b00;font-weight:bold}.ok{color:#070}pre{background:#f6f6f6;padding:6px;margin:2px 0;\
font-size:11px}svg text{font:11px sans-serif}details{margin:2px 0}.dagbox{overflow-x:auto}";

pub fn page(app: &App) -> String {
    let colours = Colours::new(app);
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ember {id}</title>\
         <style>{STYLE}</style></head><body><h1>ember application {id}</h1>",
        id = escape(&app.app_id)
    );
    out.push_str(&summary(app));
    out.push_str(&executors(app));
    let _ = write!(
        out,
        "<section id=\"timeline\"><h2>Task timeline per executor</h2>\
         <p>One row per worker thread, coloured by stage (as in the DAGs below); red: a failed attempt.</p>{}</section>",
        svg::timeline(app, &colours)
    );
    out.push_str("<section id=\"jobs\">");
    for job in &app.jobs {
        out.push_str(&job_section(job, &colours));
    }
    out.push_str("</section>");
    out.push_str(&shuffles(app));
    out.push_str(&failures(app));
    out.push_str("</body></html>\n");
    out
}

fn summary(app: &App) -> String {
    let tasks = app.tasks().count();
    let failed = app.tasks().filter(|(_, _, t)| t.failure.is_some()).count();
    let class = if app.status == "succeeded" {
        "ok"
    } else {
        "failed"
    };
    let mut out = format!(
        "<section id=\"summary\"><table>\
         <tr><th class=\"l\">command</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">status</th><td class=\"l {class}\" id=\"status\">{}{}</td></tr>\
         <tr><th class=\"l\">mode</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">start</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">duration</th><td class=\"l\">{:.3} s</td></tr>\
         <tr><th class=\"l\">jobs, tasks, failed attempts</th><td class=\"l\">{}, {tasks}, {failed}</td></tr>",
        escape(&app.command.join(" ")),
        escape(&app.status),
        app.failure
            .as_deref()
            .map(|f| format!(": {}", escape(f)))
            .unwrap_or_default(),
        escape(&app.mode),
        time(app.start_us),
        app.seconds(),
        app.jobs.len(),
    );
    let settings: Vec<String> = app
        .settings
        .iter()
        .map(|(k, v)| format!("--{k} {}", escape(v)))
        .collect();
    let _ = write!(
        out,
        "<tr><th class=\"l\">engine settings</th><td class=\"l\">{}</td></tr></table></section>",
        settings.join(", ")
    );
    out
}

fn executors(app: &App) -> String {
    let mut out = String::from(
        "<section id=\"executors\"><h2>Executors</h2><table><tr><th>executor</th><th class=\"l\">host</th>\
         <th>pid</th><th>threads</th><th>memory budget</th><th>tasks</th><th>task time</th>\
         <th>shuffle read</th><th>shuffle write</th><th>spill</th><th>peak memory</th></tr>",
    );
    for e in &app.executors {
        let rank = e.id.rank();
        let mine: Vec<_> = app
            .tasks()
            .filter(|(_, _, t)| t.executor == rank)
            .map(|(_, _, t)| t)
            .collect();
        let sum = |f: fn(&crate::protocol::TaskMetrics) -> u64| {
            mine.iter().map(|t| f(&t.metrics)).sum::<u64>()
        };
        let peak = app
            .memory_peaks
            .iter()
            .find(|(r, _)| *r == rank)
            .map(|p| p.1)
            .unwrap_or_else(|| {
                mine.iter()
                    .map(|t| t.metrics.executor_memory_peak)
                    .max()
                    .unwrap_or(0)
            });
        let _ = write!(
            out,
            "<tr class=\"executor\" data-executor=\"{rank}\"><td>{rank}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.3} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.host),
            e.pid,
            e.threads,
            ByteSize(e.memory_budget),
            mine.len(),
            mine.iter().map(|t| t.seconds()).sum::<f64>(),
            ByteSize(sum(|m| m.shuffle_read_bytes)),
            ByteSize(sum(|m| m.shuffle_write_bytes)),
            ByteSize(sum(|m| m.spilled_bytes)),
            ByteSize(peak),
        );
    }
    if let Some((_, driver)) = app.memory_peaks.iter().find(|(r, _)| *r == 0) {
        let _ = write!(
            out,
            "<tr><td>driver</td><td class=\"l\" colspan=\"9\"></td><td>{}</td></tr>",
            ByteSize(*driver)
        );
    }
    out.push_str(
        "</table><p>Spill: bytes written to disk because they did not fit the executor's \
         memory budget. Peak memory: the process's peak resident memory.</p></section>",
    );
    out
}

fn job_section(job: &JobRun, colours: &Colours) -> String {
    let duration = job
        .end_us
        .map(|e| format!("{:.3} s", e.saturating_sub(job.start_us) as f64 / 1e6))
        .unwrap_or_else(|| "did not end".into());
    let status = match &job.failure {
        Some(f) => format!("<span class=\"failed\">failed: {}</span>", escape(f)),
        None if job.end_us.is_some() => "<span class=\"ok\">succeeded</span>".into(),
        None => "<span class=\"failed\">incomplete</span>".into(),
    };
    let mut out = format!(
        "<div class=\"job\" id=\"job-{id}\" data-job=\"{id}\"><h2>Job {id}: {name}</h2><p>{duration}, {status}</p><div class=\"dagbox\">{dag}</div>\
         <table><tr><th>stage</th><th class=\"l\">status</th><th>tasks</th><th>duration</th>\
         <th>records in</th><th>bytes in</th><th>records out</th><th>bytes out</th><th>task time (sorted)</th>\
         <th>max / median</th><th>task bytes (sorted)</th></tr>",
        id = job.job,
        name = escape(&job.name),
        dag = svg::dag(job, colours),
    );
    for s in &job.stages {
        out.push_str(&stage_row(job, s, colours));
    }
    out.push_str("</table>");
    out.push_str(
        "<p>Records and bytes in: read from shuffles (records read from sources are not \
         counted); out: written to a shuffle, or a result sent to the driver.</p>",
    );
    // Lineages open under the table, unless an iterative job has too many to read.
    let open = if job.stages.len() <= 8 { " open" } else { "" };
    for s in &job.stages {
        let _ = write!(
            out,
            "<details{open}><summary>stage {} lineage</summary><pre>{}</pre></details>",
            s.info.stage.0,
            escape(&s.info.lineage)
        );
    }
    out.push_str("</div>");
    out
}

fn stage_row(job: &JobRun, s: &StageRun, colours: &Colours) -> String {
    let ok: Vec<_> = s.tasks.iter().filter(|t| t.failure.is_none()).collect();
    let times: Vec<f64> = ok.iter().map(|t| t.seconds()).collect();
    let bytes: Vec<f64> = ok.iter().map(|t| t.bytes() as f64).collect();
    let m = s.metrics.unwrap_or_default();
    let duration = match (s.start_us, s.end_us) {
        (Some(a), Some(b)) => format!("{:.3} s", b.saturating_sub(a) as f64 / 1e6),
        _ => String::new(),
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let skew = match (sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(&med), Some(&max)) if med > 0.0 => format!("{:.1}", max / med),
        _ => String::new(),
    };
    let colour = colours.of(job.job, s.info.stage.0);
    format!(
        "<tr class=\"stage\" data-job=\"{}\" data-stage=\"{st}\"><td>{st}</td><td class=\"l\">{}{}</td><td>{}/{}</td><td>{duration}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{skew}</td><td>{}</td></tr>",
        job.job,
        s.status(),
        s.skipped
            .as_deref()
            .or(s.failure.as_deref())
            .map(|r| format!(": {}", escape(r)))
            .unwrap_or_default(),
        ok.len(),
        s.info.partitions,
        m.shuffle_read_records,
        ByteSize(m.shuffle_read_bytes),
        m.shuffle_write_records,
        ByteSize(m.shuffle_write_bytes + m.result_bytes),
        svg::bars(&times, &colour, "s"),
        svg::bars(&bytes, &colour, "bytes"),
        st = s.info.stage.0,
    )
}

fn shuffles(app: &App) -> String {
    let mut out = String::from(
        "<section id=\"shuffles\"><h2>Shuffle exchanges</h2><table><tr><th>job</th><th>shuffle</th>\
         <th class=\"l\">mode</th><th>bytes</th><th>across nodes</th><th>rounds</th><th>seconds</th></tr>",
    );
    for x in &app.exchanges {
        let _ = write!(
            out,
            "<tr class=\"exchange\"><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            x.job,
            x.shuffle,
            escape(&x.mode),
            ByteSize(x.bytes),
            ByteSize(x.cross_node),
            x.rounds,
            x.seconds
        );
    }
    out.push_str("</table></section>");
    out
}

fn failures(app: &App) -> String {
    let mut out = String::from("<section id=\"failures\"><h2>Failures</h2><ul>");
    for (job, stage, t) in app.tasks() {
        if let Some(f) = &t.failure {
            let _ = write!(
                out,
                "<li class=\"failure\">job {} stage {} task {} attempt {} on executor {}: {}</li>",
                job.job,
                stage.info.stage.0,
                t.partition,
                t.attempt + 1,
                t.executor,
                escape(f)
            );
        }
    }
    for job in app.jobs.iter().filter(|j| j.failure.is_some()) {
        let _ = write!(
            out,
            "<li class=\"failure\">job {} failed: {}</li>",
            job.job,
            escape(job.failure.as_deref().unwrap_or(""))
        );
    }
    if let Some(f) = &app.failure {
        let _ = write!(
            out,
            "<li class=\"failure\">application failed: {}</li>",
            escape(f)
        );
    }
    if !out.contains("<li") {
        out.push_str("<li>none</li>");
    }
    out.push_str("</ul></section>");
    out
}
