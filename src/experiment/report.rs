//! The experiment's report, rebuilt from the step markers: per seed and arm the accuracy and
//! macro-F1, mean ± standard deviation over seeds, the data counts and every step's wall time;
//! as JSON and as a Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::steps::{
    AnnotateDetail, EvalDetail, FilterDetail, GenerateDetail, SeedsDetail, TrainDetail,
    read_marker, step_names,
};
use super::{Arm, ExperimentSpec, seed_dir};
use crate::eval::judge_selection::Selection;
use crate::eval::metrics::mean_std;
use crate::eval::paired::{Paired, compare};
use crate::eval::run_folder;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmResult {
    pub arm: Arm,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
    /// Examples the adapter trained on (LoRA arms).
    pub train_examples: Option<usize>,
    /// Training and evaluation.
    pub seconds: f64,
    /// Against the seeds-only run of the same draw, on the same rows (trained arms other than
    /// lora-real, when both evaluations recorded their rows).
    #[serde(default)]
    pub vs_seeds: Option<Paired>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedReport {
    pub seed: u64,
    pub seeds_per_class: BTreeMap<String, usize>,
    pub generate: Option<GenerateDetail>,
    pub filter: Option<FilterDetail>,
    /// The seed-tuned teacher's generation and its filtering (the teacher arm).
    #[serde(default)]
    pub teacher_generate: Option<GenerateDetail>,
    #[serde(default)]
    pub teacher_filter: Option<FilterDetail>,
    /// The unlabelled pool's annotation (the annotated arm).
    #[serde(default)]
    pub annotate: Option<AnnotateDetail>,
    /// The cross-validated choice of the label-consistency judge.
    #[serde(default)]
    pub judge: Option<Selection>,
    pub results: Vec<ArmResult>,
    /// Wall time of each finished step, in run order.
    pub steps: Vec<(String, f64)>,
    pub seconds: f64,
    /// Steps not finished yet.
    pub pending: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmSummary {
    pub arm: Arm,
    pub seeds: usize,
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
    pub macro_f1_mean: f64,
    pub macro_f1_std: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentReport {
    pub command: String,
    pub spec: ExperimentSpec,
    pub arms: Vec<Arm>,
    pub seeds: Vec<SeedReport>,
    pub summary: Vec<ArmSummary>,
    /// All steps' wall time (a resumed step counts its own run once).
    pub seconds: f64,
    pub complete: bool,
}

fn detail<T: DeserializeOwned>(dir: &Path, step: &str) -> anyhow::Result<Option<(T, f64)>> {
    Ok(match read_marker(dir, step)? {
        Some(m) => Some((serde_json::from_value(m.detail)?, m.seconds)),
        None => None,
    })
}

pub fn build(
    out: &Path,
    spec: &ExperimentSpec,
    seeds: &[u64],
    arms: &[Arm],
    command: &str,
) -> anyhow::Result<ExperimentReport> {
    let mut per_seed = Vec::new();
    for &seed in seeds {
        let dir = seed_dir(out, seed);
        let mut steps = Vec::new();
        let mut pending = Vec::new();
        for name in step_names(spec, arms) {
            match read_marker(&dir, &name)? {
                Some(m) => steps.push((name, m.seconds)),
                None => pending.push(name),
            }
        }
        let mut results = Vec::new();
        // An evaluation the markers say is done and that cannot be read is an error, not a
        // comparison left out.
        let rows_of = |arm: Arm| -> anyhow::Result<Option<Vec<bool>>> {
            Ok(run_folder::read_report(&dir.join(arm.name()))
                .map_err(anyhow::Error::msg)?
                .map(|r| r.correct))
        };
        let twin = rows_of(Arm::LoraReal)?;
        for &arm in arms {
            let Some((eval, eval_s)) = detail::<EvalDetail>(&dir, &format!("eval-{}", arm.name()))?
            else {
                continue;
            };
            let train = detail::<TrainDetail>(&dir, &format!("train-{}", arm.name()))?;
            results.push(ArmResult {
                arm,
                accuracy: eval.accuracy,
                macro_f1: eval.macro_f1,
                n: eval.n,
                train_examples: train.as_ref().map(|(t, _)| t.train_examples),
                seconds: eval_s + train.map_or(0.0, |(_, s)| s),
                vs_seeds: match (&twin, arm.adapter_of().is_some() && arm != Arm::LoraReal) {
                    (Some(t), true) => rows_of(arm)?.and_then(|r| compare(&r, t, seed)),
                    _ => None,
                },
            });
        }
        per_seed.push(SeedReport {
            seed,
            seeds_per_class: detail::<SeedsDetail>(&dir, "seeds")?
                .map(|(d, _)| d.per_class)
                .unwrap_or_default(),
            generate: detail(&dir, "generate")?.map(|(d, _)| d),
            filter: detail(&dir, "filter")?.map(|(d, _)| d),
            teacher_generate: detail(&dir, "generate-teacher")?.map(|(d, _)| d),
            teacher_filter: detail(&dir, "filter-teacher")?.map(|(d, _)| d),
            annotate: detail(&dir, "annotate")?.map(|(d, _)| d),
            judge: detail(&dir, "judge")?.map(|(d, _)| d),
            results,
            seconds: steps.iter().map(|(_, s)| s).sum(),
            steps,
            pending,
        });
    }
    let summary = arms
        .iter()
        .filter_map(|&arm| {
            let rs: Vec<&ArmResult> = per_seed
                .iter()
                .flat_map(|s| s.results.iter().filter(move |r| r.arm == arm))
                .collect();
            if rs.is_empty() {
                return None;
            }
            let (am, asd) = mean_std(&rs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let (fm, fsd) = mean_std(&rs.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
            Some(ArmSummary {
                arm,
                seeds: rs.len(),
                accuracy_mean: am,
                accuracy_std: asd,
                macro_f1_mean: fm,
                macro_f1_std: fsd,
            })
        })
        .collect();
    Ok(ExperimentReport {
        command: command.to_string(),
        spec: spec.clone(),
        arms: arms.to_vec(),
        seconds: per_seed.iter().map(|s| s.seconds).sum(),
        complete: per_seed.iter().all(|s| s.pending.is_empty()),
        seeds: per_seed,
        summary,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

fn minutes(s: f64) -> String {
    if s >= 90.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// Each trained arm against the seeds-only run of the same draw: the paired difference on the
/// same rows with its 95% bootstrap interval and McNemar's p, per seed, and the mean.
fn paired_table(md: &mut String, r: &ExperimentReport) {
    let arms: Vec<Arm> = r
        .summary
        .iter()
        .map(|s| s.arm)
        .filter(|a| {
            r.seeds.iter().any(|s| {
                s.results
                    .iter()
                    .any(|x| x.arm == *a && x.vs_seeds.is_some())
            })
        })
        .collect();
    if arms.is_empty() {
        return;
    }
    let mut head = String::from("\n| against LoRA on the seeds alone, same rows |");
    let mut rule = String::from("|---|");
    for s in &r.seeds {
        let _ = write!(head, " seed {}: Δ points [95% CI], p |", s.seed);
        rule.push_str("---:|");
    }
    head.push_str(" mean Δ | worse than its twin |");
    rule.push_str("---:|---|");
    let _ = writeln!(md, "{head}\n{rule}");
    for arm in arms {
        let mut row = format!("| {} |", arm.describe());
        let mut diffs = Vec::new();
        let mut worse = Vec::new();
        for s in &r.seeds {
            match s
                .results
                .iter()
                .find(|x| x.arm == arm)
                .and_then(|x| x.vs_seeds.as_ref())
            {
                Some(p) => {
                    diffs.push(p.diff);
                    if p.worse() {
                        worse.push(format!("seed {}", s.seed));
                    }
                    let _ = write!(
                        row,
                        " {:+.1} [{:+.1}, {:+.1}], {:.2} |",
                        p.diff * 100.0,
                        p.low * 100.0,
                        p.high * 100.0,
                        p.p_value
                    );
                }
                None => row.push_str(" – |"),
            }
        }
        let mean = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
        let _ = writeln!(
            row,
            " **{:+.1}** | {} |",
            mean * 100.0,
            if worse.is_empty() {
                "no".to_string()
            } else {
                format!("**yes**: {}", worse.join(", "))
            }
        );
        md.push_str(&row);
    }
}

/// The judge each draw chose by cross-validation on its seeds, with the measurement.
fn judge_table(md: &mut String, r: &ExperimentReport) {
    if r.seeds.iter().all(|s| s.judge.is_none()) {
        return;
    }
    let _ = writeln!(
        md,
        "\n| seed | label-consistency judge | cross-validation on the seeds (right / seeds) |\n|---:|---|---|"
    );
    for s in &r.seeds {
        let Some(j) = &s.judge else { continue };
        let measured: Vec<String> = j
            .measured
            .iter()
            .map(|m| format!("{} {}/{}", m.judge.name(), m.correct, m.n))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} ({} folds) |",
            s.seed,
            j.chosen.name(),
            measured.join(", "),
            j.folds
        );
    }
}

/// The report as Markdown: the results table first, then data counts, settings and times.
pub fn markdown(r: &ExperimentReport) -> String {
    let mut md = String::new();
    let spec = &r.spec;
    let seeds: Vec<String> = r.seeds.iter().map(|s| s.seed.to_string()).collect();
    let rows = match &spec.validation {
        Some(c) => format!(
            "{} validation rows carved from {} (seed {})",
            spec.test_rows,
            spec.dataset.display(),
            c.seed
        ),
        None => format!("{} test rows", spec.test_rows),
    };
    let _ = writeln!(
        md,
        "### {} — {rows}, {} seeds per class, sampling seeds {}{}\n",
        spec.task.name,
        spec.seeds_per_class,
        seeds.join(", "),
        if r.complete { "" } else { " (unfinished)" }
    );
    let _ = writeln!(md, "```\n{}\n```\n", r.command);

    // Results: one column per seed, then mean ± std.
    let mut head = String::from("| method |");
    let mut rule = String::from("|---|");
    for s in &r.seeds {
        let _ = write!(head, " seed {} |", s.seed);
        rule.push_str("---:|");
    }
    head.push_str(" accuracy % (mean ± sd) | macro-F1 (mean ± sd) |");
    rule.push_str("---:|---:|");
    let _ = writeln!(md, "{head}\n{rule}");
    for sum in &r.summary {
        let mut row = format!("| {} |", sum.arm.describe());
        for s in &r.seeds {
            match s.results.iter().find(|x| x.arm == sum.arm) {
                Some(x) => {
                    let _ = write!(row, " {} |", pct(x.accuracy));
                }
                None => row.push_str(" – |"),
            }
        }
        let _ = writeln!(
            row,
            " **{} ± {}** | {:.3} ± {:.3} |",
            pct(sum.accuracy_mean),
            pct(sum.accuracy_std),
            sum.macro_f1_mean,
            sum.macro_f1_std
        );
        md.push_str(&row);
    }

    paired_table(&mut md, r);
    judge_table(&mut md, r);

    let _ = writeln!(
        md,
        "\n| seed | data | items | kept by the filters | rejected by stage | label agreement | kept distinct-2 / pairwise similarity | mean words, kept (seeds) |\n|---:|---|---:|---|---|---|---|---|"
    );
    let per_class = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kept_cell = |kept: usize, of: usize, classes: &BTreeMap<String, usize>| {
        format!(
            "{kept} ({:.0}%): {}",
            100.0 * kept as f64 / of.max(1) as f64,
            per_class(classes)
        )
    };
    for s in &r.seeds {
        let written = [
            ("base model, generated", &s.generate, &s.filter),
            (
                "seed-tuned teacher, generated",
                &s.teacher_generate,
                &s.teacher_filter,
            ),
        ];
        for (what, generated, filter) in written {
            if generated.is_none() && filter.is_none() {
                continue;
            }
            let items = generated
                .as_ref()
                .map_or("–".into(), |g| g.items.to_string());
            let (kept, rejected) = match filter {
                Some(f) => (
                    kept_cell(f.kept, f.kept + f.rejected, &f.kept_per_class),
                    per_class(&f.rejected_by_stage),
                ),
                None => ("–".into(), "–".into()),
            };
            let diversity = filter.as_ref().and_then(|f| f.diversity.as_ref()).map_or(
                "–".into(),
                |(seeds, kept)| {
                    format!(
                        "{:.2} / {:.3} (seeds {:.2} / {:.3})",
                        kept.distinct_2,
                        kept.mean_pairwise_similarity,
                        seeds.distinct_2,
                        seeds.mean_pairwise_similarity
                    )
                },
            );
            let words =
                filter
                    .as_ref()
                    .filter(|f| !f.mean_words.is_empty())
                    .map_or("–".into(), |f| {
                        let per_class: Vec<(String, f64, f64)> = f
                            .mean_words
                            .iter()
                            .map(|(l, (kept, seeds))| (l.clone(), *kept, *seeds))
                            .collect();
                        crate::pipeline::length_strata::mean_words_line(&per_class)
                    });
            let short =
                generated
                    .as_ref()
                    .filter(|g| !g.short.is_empty())
                    .map_or(String::new(), |g| {
                        format!(
                            " (attempt cap hit: {})",
                            g.short
                                .iter()
                                .map(|(l, n)| format!("{l} {n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
            let _ = writeln!(
                md,
                "| {} | {what} | {items} | {kept}{short} | {rejected} | – | {diversity} | {words} |",
                s.seed
            );
        }
        if let Some(a) = &s.annotate {
            let _ = writeln!(
                md,
                "| {} | unlabelled pool, annotated | {} | {} | below the confidence or duplicate {} | {:.0}% of the pool, {:.0}% of the kept | – | – |",
                s.seed,
                a.pool,
                kept_cell(a.kept, a.pool, &a.kept_per_class),
                a.pool - a.kept,
                100.0 * a.agreement,
                100.0 * a.kept_agreement
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| seed | trained on (real + synthetic examples, per arm) |\n|---:|---|"
    );
    for s in &r.seeds {
        let trained: Vec<String> = s
            .results
            .iter()
            .filter_map(|x| x.train_examples.map(|n| format!("{} {n}", x.arm.name())))
            .collect();
        let _ = writeln!(md, "| {} | {} |", s.seed, trained.join(", "));
    }

    let _ = writeln!(md, "\n| seed | step times | total |\n|---:|---|---:|");
    for s in &r.seeds {
        let steps: Vec<String> = s
            .steps
            .iter()
            .map(|(n, t)| format!("{n} {}", minutes(*t)))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            s.seed,
            steps.join(", "),
            minutes(s.seconds)
        );
    }
    let g = &spec.generate;
    let t = &spec.train;
    let _ = writeln!(
        md,
        "\nWall time of all steps: {}. Generation: {} per class, temperature {}, top-p {}, \
         guidance {} (against {}), batch {}. Filters: near-duplicate Jaccard ≥ {}{}, label consistency {} (calibrated {}, \
         margin {}). LoRA: r={}, α={}, lr {}, up to {} epochs, patience {}, validation {:.0}% \
         of the seeds. Model {}.",
        minutes(r.seconds),
        g.per_class,
        g.sampling.temperature,
        g.sampling.top_p,
        g.sampling.guidance_scale,
        g.guide_against.name(),
        g.batch,
        spec.filters.near_dup_threshold,
        spec.filters
            .likelihood_said()
            .map(|b| format!(", the writer's log-probability in {b}"))
            .unwrap_or_default(),
        if spec.filters.label_consistency {
            "on"
        } else {
            "off"
        },
        spec.filters.calibrate,
        spec.filters.min_margin,
        t.lora.rank,
        t.lora.alpha,
        t.lr,
        t.epochs,
        t.patience,
        t.val_fraction * 100.0,
        spec.model
    );
    let w = &t.weighting;
    let _ = writeln!(
        md,
        "\nSeeds: {} per class, at least {} words, {} (`--seed-rows {}`). Judge: {}. Quota: {}. Loss: classes balanced {}, synthetic weight {}, label \
         smoothing {}, soft labels {}. Reading: {}.",
        spec.seeds_per_class,
        spec.min_words,
        spec.seed_rows.describe(),
        spec.seed_rows.name(),
        if spec.judge_select {
            "chosen per draw by cross-validation on the seeds".to_string()
        } else {
            spec.filters.judge.name().to_string()
        },
        if g.max_attempts_factor > 1 {
            format!(
                "generate until {} kept per class{}, at most {} attempts per class",
                g.per_class,
                if g.length_bins() > 1 {
                    format!(
                        " in equal shares of {} length bins of the seeds' word counts",
                        g.length_bins()
                    )
                } else {
                    String::new()
                },
                g.attempt_cap()
            )
        } else {
            format!("{} attempts per class, whatever is kept", g.per_class)
        },
        if w.balance_classes { "yes" } else { "no" },
        w.synthetic_weight
            .map_or("none (each item weighs one)".into(), |x| format!(
                "{x}× the seeds"
            )),
        w.label_smoothing,
        if w.soft_labels { "yes" } else { "no" },
        if spec.calibrate_extra {
            format!(
                "LoRA runs on generated items calibrated at strength {}, the others raw",
                crate::eval::reading::GENERATED_STRENGTH
            )
        } else {
            "every LoRA run raw".into()
        }
    );
    if !spec.task.attributes.is_empty() {
        let said: Vec<String> = spec
            .task
            .attributes
            .iter()
            .map(|a| format!("{} ({})", a.name, a.values.join(" | ")))
            .collect();
        let _ = writeln!(md, "\nAttributes drawn per request: {}.", said.join("; "));
    }
    servers(&mut md, r, spec);
    md
}

/// Which OpenAI-compatible servers wrote and judged, when any did (from each draw's generate
/// step, else from the spec).
fn servers(md: &mut String, r: &ExperimentReport, spec: &ExperimentSpec) {
    let named = |e: &crate::llm::remote::RemoteSettings| {
        format!(
            "{} (model {})",
            e.endpoint.base(),
            e.endpoint.model.as_deref().unwrap_or("the one it serves")
        )
    };
    let wrote: Vec<String> = r
        .seeds
        .iter()
        .filter_map(|s| s.generate.as_ref()?.writer.as_ref())
        .map(|w| {
            format!(
                "{} (model {}, /{})",
                w["endpoint"].as_str().unwrap_or("?"),
                w["model"].as_str().unwrap_or("?"),
                w["api"].as_str().unwrap_or("?")
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let wrote = if !wrote.is_empty() {
        Some(wrote.join("; "))
    } else {
        spec.generate.remote.as_deref().map(named)
    };
    if let Some(w) = wrote {
        let _ = writeln!(
            md,
            "
Writer: the base model's examples were written by the server at {w}."
        );
    }
    if let Some(j) = spec.filters.remote_judge.as_deref() {
        let _ = writeln!(
            md,
            "
Judge server: labels checked (and the pool annotated) from the log-probabilities \
             of the label words on the server at {}.",
            named(j)
        );
    }
}
