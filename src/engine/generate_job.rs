//! The generation job: the model writes examples, each finished one goes into the journal at
//! once, the cheap filters judge it on the spot, and label consistency follows in small batches —
//! so the user watches items and verdicts arrive while generation runs.

use std::path::Path;
use std::sync::Mutex;

use serde_json::json;

use super::event::{Event, JobId};
use super::judge::{Judges, judge};
use super::{JobControl, Sink};
use crate::data::item::{Item, ItemId, Source, Verdict};
use crate::data::record::RecordBody;
use crate::data::task::Task;
use crate::data::workspace::Workspace;
use crate::llm::decode::FinishReason;
use crate::llm::load::LoadedModel;
use crate::pipeline::classify::Classifier;
use crate::pipeline::filters::diversity::{Diversity, diversity};
use crate::pipeline::filters::judge::remote_classifier;
use crate::pipeline::filters::stages::{
    LIKELIHOOD, QUOTA, consistency_classifier, label_consistency, likelihood,
};
use crate::pipeline::filters::{FilterSettings, Filters};
use crate::pipeline::generate::{self, GenerateEvent, GenerateSettings};
use crate::pipeline::length_strata;
use crate::pipeline::prompt::Templates;
use crate::pipeline::quota::Quota;
use crate::pipeline::writer::{self, Writer};
use crate::train::peft::with_adapter;

/// Items whose label consistency is checked together.
const CLASSIFY_BATCH: usize = 8;

pub struct Outcome {
    pub items: usize,
    pub kept: usize,
    pub cancelled: bool,
    /// How varied this run's kept items are, and the seeds (distinct bigrams, mean pairwise
    /// similarity): synthetic sets are often much less varied than real ones.
    pub diversity: (Diversity, Diversity),
    /// The classes whose attempt cap came before their quota of kept items, with what they kept.
    pub short: Vec<(String, usize)>,
    /// Per class, the mean word count of this run's kept items and of the seeds.
    pub mean_words: Vec<(String, f64, f64)>,
}

impl Outcome {
    pub fn summary(&self) -> String {
        let (kept, seeds) = &self.diversity;
        let words = length_strata::mean_words_line(&self.mean_words);
        format!(
            "{} items written, {} kept by the filters (kept distinct-2 {:.2}, similarity {:.3}; \
             seeds {:.2}, {:.3}; mean words kept (seeds): {words})",
            self.items,
            self.kept,
            kept.distinct_2,
            kept.mean_pairwise_similarity,
            seeds.distinct_2,
            seeds.mean_pairwise_similarity
        )
    }
}

/// The workspace's task with its current seeds.
pub fn task_of(ws: &Mutex<Workspace>) -> Task {
    let ws = ws.lock().unwrap_or_else(|e| e.into_inner());
    let mut task = ws.task().clone();
    task.seeds = ws.seeds().to_vec();
    task
}

/// Filters primed with the seeds and with every item already in the workspace that passed the
/// cheap stages, so a new run's duplicates of an earlier run's items are caught too.
/// The items are copied out under the lock and their signatures built after it, so the
/// store's writes (the user's decisions) do not wait on thousands of MinHash signatures.
pub fn primed_filters(ws: &Mutex<Workspace>, task: &Task, settings: FilterSettings) -> Filters {
    let items = ws
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .state()
        .items()
        .to_vec();
    Filters::after(task, settings, &items)
}

/// [`primed_filters`] on a workspace the caller holds: every item in it was written before
/// the new ones ([`Filters::after`]).
pub fn primed_by(ws: &Workspace, task: &Task, settings: FilterSettings) -> Filters {
    Filters::after(task, settings, ws.state().items())
}

/// What one generation job is asked to do.
pub struct Request<'a> {
    pub settings: &'a GenerateSettings,
    pub filters: &'a FilterSettings,
    pub adapter: Option<&'a Path>,
}

pub fn run(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    request: &Request,
    control: &JobControl,
    events: &Sink,
    judges: &mut Judges,
) -> anyhow::Result<Outcome> {
    let settings = request.settings;
    settings.validate().map_err(anyhow::Error::msg)?;
    request.filters.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !(request.filters.likelihood_band() && settings.remote.is_some()),
        "the log-probability band needs the model here as the writer: a server is not asked \
         for log-probabilities (clear the floor and ceiling, or write with the base model)"
    );
    // The writer: the base model, or a copy carrying the adapter (the engine's model must stay
    // the base one for the label check and every later job).
    let adapted = request
        .adapter
        .map(|dir| with_adapter(&model.model, dir))
        .transpose()?;
    // A server, when one is set: connected (its model checked) before anything starts.
    let remote = settings
        .remote
        .clone()
        .map(|r| crate::llm::remote::Remote::connect(*r))
        .transpose()?;
    let writer = match &remote {
        Some(r) => Writer::Remote(r),
        None => Writer::Local {
            model: adapted.as_ref().unwrap_or(&model.model),
            batch: settings.batch,
        },
    };
    let provenance = writer.provenance(settings);
    let plan_settings = writer.plan_settings(settings);
    let task = task_of(ws);
    let templates = Templates::for_task(&task)?;
    let total = settings.per_class * task.labels.len();
    events.send(Event::JobStarted {
        job,
        kind: super::event::JobKind::Generate,
        total,
    });
    // A judging server, when one is set: connected before anything is written, and then the
    // judge instead of the model here.
    let remote_judge = request
        .filters
        .remote_judge
        .clone()
        .filter(|_| request.filters.label_consistency)
        .map(|r| crate::llm::remote::Remote::connect(*r))
        .transpose()?;
    if let Some(r) = &remote_judge {
        events.send(Event::JudgeChosen {
            job,
            summary: remote_summary(r, request.filters),
        });
    }
    let resolved = if request.filters.label_consistency && remote_judge.is_none() {
        Some(judge(
            judges,
            job,
            model,
            &task,
            &templates,
            request.filters,
            events,
        )?)
    } else {
        None
    };
    let filter_settings =
        &resolved.map_or_else(|| request.filters.clone(), |r| r.settings(request.filters));
    let mut filters = primed_filters(ws, &task, filter_settings.clone());
    let classifier = match (&remote_judge, resolved) {
        (Some(r), _) => Some(remote_classifier(r, &task, &templates, filter_settings)?),
        (None, Some(r)) => Some(Classifier::new(
            r.model(model),
            &model.tokenizer,
            &task,
            &templates,
            consistency_classifier(&task, filter_settings),
        )?),
        (None, None) => None,
    };
    // A server's generation goes on where a stopped one with the same plan left off: the
    // requests already journaled (same plan, same number, same prompt) are not asked again.
    let plan = remote.as_ref().map(|_| plan_key(&task, settings));
    let journaled = plan
        .as_deref()
        .map(|k| journaled_requests(ws, k))
        .unwrap_or_default();
    let mut resumed = 0usize;
    let mut pending: Vec<(ItemId, String, String)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut items = 0usize;
    let sampling = json!(settings.sampling);
    let adapter_meta = request.adapter.map(|d| json!(d.display().to_string()));

    let mut journal = |bodies: Vec<RecordBody>| -> anyhow::Result<()> {
        let mut w = ws.lock().unwrap_or_else(|e| e.into_inner());
        w.append_all(bodies)?;
        Ok(())
    };
    let check_pending = |pending: &mut Vec<(ItemId, String, String)>,
                         journal: &mut dyn FnMut(Vec<RecordBody>) -> anyhow::Result<()>|
     -> anyhow::Result<()> {
        let Some(c) = &classifier else {
            pending.clear();
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = pending.iter().map(|p| p.2.as_str()).collect();
        let preds = c.classify(&texts)?;
        let mut bodies = Vec::new();
        let mut verdicts = Vec::new();
        for ((id, label, _), p) in pending.iter().zip(&preds) {
            let v = label_consistency(filter_settings.min_margin, label, p);
            verdicts.push((id.clone(), v.stage.clone(), v.pass));
            bodies.push(RecordBody::Verdict {
                item_id: id.clone(),
                verdict: v,
            });
        }
        journal(bodies)?;
        for (item, stage, pass) in verdicts {
            events.send(Event::Verdict { item, stage, pass });
        }
        events.send(Event::LabelChecked {
            job,
            items: pending.drain(..).map(|p| p.0).collect(),
        });
        Ok(())
    };

    // Rounds until every class has its quota of kept items or its attempt cap: a first round
    // of `per_class` each, then more for the classes the filters thinned.
    let seed_words: Vec<usize> = task
        .seeds
        .iter()
        .map(|s| length_strata::words(&s.text))
        .collect();
    let mut quota = Quota::new(settings, task.labels.len(), &seed_words);
    if let Some(strata) = quota.strata() {
        events.send(Event::Log(format!(
            "each class's quota split over {} length bins of the seeds' word counts: {}",
            strata.bins(),
            strata.summary()
        )));
    }
    let mut next_index = 0u64;
    while let Some(counts) = quota.next_round() {
        if control.is_stopped() {
            break;
        }
        let planned = generate::plan_counts(
            &task,
            &templates,
            &model.tokenizer,
            &plan_settings,
            &counts,
            next_index,
        )?;
        next_index += planned.len() as u64;
        let (already, planned): (Vec<_>, Vec<_>) = planned.into_iter().partition(|p| {
            journaled
                .get(&p.index)
                .is_some_and(|(_, prompt)| *prompt == p.prompt)
        });
        if !already.is_empty() {
            resumed += already.len();
            events.send(Event::Log(format!(
                "{} requests of this plan are already in the journal (a stopped run of the same \
                 settings and seed): not asked again",
                already.len()
            )));
        }
        let before = items;
        let written = writer::write(
            &writer,
            &model.tokenizer,
            &task,
            settings,
            planned,
            control.stop_flag(),
            &mut |event| {
                control.wait_while_paused();
                if failure.is_some() {
                    return;
                }
                let result: anyhow::Result<()> = (|| {
                    match event {
                        GenerateEvent::Started { index, label } => {
                            events.send(Event::SequenceStarted { job, index, label })
                        }
                        GenerateEvent::Delta { index, text } => {
                            events.send(Event::Delta { job, index, text })
                        }
                        GenerateEvent::Progress(p) => events.send(Event::Progress {
                            job,
                            done: p.done,
                            total: p.total,
                            tokens_per_second: p.tokens_per_second,
                            eta_seconds: p.eta_seconds,
                        }),
                        // A sequence cut short by the user's cancel is not a generation.
                        GenerateEvent::Candidate(c) if c.finish == FinishReason::Cancelled => {}
                        GenerateEvent::Candidate(c) => {
                            let mut item =
                                Item::new(c.text.clone(), c.label.clone(), Source::Generated);
                            item.raw = Some(c.raw.clone());
                            item.prompt = Some(c.prompt.clone());
                            item.meta.insert("request".into(), json!(c.index));
                            let drawn = generate::attributes_for(&task, &plan_settings, c.index);
                            if !drawn.is_empty() {
                                let map: serde_json::Map<String, serde_json::Value> = drawn
                                    .iter()
                                    .map(|(n, v)| ((*n).to_string(), json!(v)))
                                    .collect();
                                item.meta.insert("attributes".into(), map.into());
                            }
                            item.meta.insert("finish".into(), json!(c.finish));
                            item.meta
                                .insert("prompt_tokens".into(), json!(c.prompt_tokens));
                            item.meta.insert("new_tokens".into(), json!(c.new_tokens));
                            match &provenance {
                                Some(p) => {
                                    item.meta.insert("writer".into(), p.clone());
                                    item.meta.insert("attempts".into(), json!(c.attempts));
                                    if !c.retried_for.is_empty() {
                                        item.meta
                                            .insert("retried_for".into(), json!(c.retried_for));
                                    }
                                }
                                // A server is not asked for log-probabilities.
                                None => {
                                    item.meta
                                        .insert("mean_logprob".into(), json!(c.mean_logprob));
                                }
                            }
                            item.meta.insert("seconds".into(), json!(c.seconds));
                            item.meta.insert("extraction".into(), json!(c.extraction));
                            item.meta.insert("sampling".into(), sampling.clone());
                            if let Some(a) = &adapter_meta {
                                item.meta.insert("adapter".into(), a.clone());
                            }
                            if let Some(k) = &plan {
                                item.meta.insert("plan".into(), json!(k));
                            }
                            // The item and its cheap verdicts in one journal write: a kill
                            // cannot leave it without them.
                            let (id, sent, all_pass) = {
                                let mut w = ws.lock().unwrap_or_else(|e| e.into_inner());
                                let next = w.state().next_id(Source::Generated);
                                let mut verdicts: Vec<Verdict> =
                                    filters.cheap(next.as_str(), &c.text, c.malformed.as_deref());
                                verdicts.extend(filters.likelihood(c.mean_logprob));
                                let all_pass = verdicts.iter().all(|v| v.pass);
                                let sent: Vec<(String, bool)> =
                                    verdicts.iter().map(|v| (v.stage.clone(), v.pass)).collect();
                                let id = w.add_item_with_verdicts(item, verdicts)?;
                                debug_assert_eq!(id, next);
                                (id, sent, all_pass)
                            };
                            items += 1;
                            events.send(Event::ItemAdded {
                                job,
                                index: c.index,
                                item: id.clone(),
                            });
                            for (stage, pass) in sent {
                                events.send(Event::Verdict {
                                    item: id.clone(),
                                    stage,
                                    pass,
                                });
                            }
                            if all_pass && classifier.is_some() {
                                events.send(Event::AwaitingLabelCheck {
                                    job,
                                    items: vec![id.clone()],
                                });
                                pending.push((id, c.label, c.text));
                            }
                            if pending.len() >= CLASSIFY_BATCH {
                                check_pending(&mut pending, &mut journal)?;
                            }
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    // Stop decoding: nothing more should be generated that cannot be recorded.
                    failure = Some(e);
                    control.stop();
                }
            },
        );
        if let Some(e) = failure {
            return Err(e);
        }
        check_pending(&mut pending, &mut journal)?;
        // A server that could not be used stops the job; what it wrote is journaled and judged.
        written?;
        // The round's items in the order they were written (a resumed plan's first): a kept
        // one past its class's quota is marked so, in one journal write.
        let over: Vec<RecordBody> = {
            let w = ws.lock().unwrap_or_else(|e| e.into_inner());
            let all = w.state().items();
            let earlier = already
                .iter()
                .filter_map(|p| w.state().get(journaled[&p.index].0.as_str()));
            let now = all[all.len() - (items - before)..].iter();
            earlier
                .chain(now)
                .filter_map(|it| {
                    let c = task.label_index(it.label()).unwrap_or(0);
                    let kept = it.verdicts().iter().all(|v| v.pass);
                    let words = length_strata::words(it.text());
                    let verdict = quota.record(c, it.label(), kept, words)?;
                    Some(RecordBody::Verdict {
                        item_id: it.id().clone(),
                        verdict,
                    })
                })
                .collect()
        };
        if !over.is_empty() {
            let marked: Vec<ItemId> = over
                .iter()
                .filter_map(|b| match b {
                    RecordBody::Verdict { item_id, .. } => Some(item_id.clone()),
                    _ => None,
                })
                .collect();
            journal(over)?;
            for item in marked {
                let stage = QUOTA.to_string();
                events.send(Event::Verdict {
                    item,
                    stage,
                    pass: false,
                });
            }
        }
        if settings.attempt_cap() > settings.per_class {
            events.send(Event::Log(format!(
                "round: {items} written, kept {}",
                quota.line(&task.labels)
            )));
        }
    }
    let short = quota.short(&task.labels);
    if !short.is_empty() {
        events.send(Event::Log(format!(
            "the attempt cap ({} per class) was hit before the quota of {} kept for: {}",
            settings.attempt_cap(),
            settings.per_class,
            short
                .iter()
                .map(|(l, n)| format!("{l} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let kept_items: Vec<(String, String)> = {
        let w = ws.lock().unwrap_or_else(|e| e.into_inner());
        w.state()
            .items()
            .iter()
            .rev()
            .take(items)
            .filter(|it| it.verdicts().iter().all(|v| v.pass))
            .map(|it| (it.label().to_string(), it.text().to_string()))
            .collect()
    };
    let kept_pairs: Vec<(&str, &str)> = kept_items
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect();
    let kept_refs: Vec<&str> = kept_pairs.iter().map(|p| p.1).collect();
    let seed_pairs: Vec<(&str, &str)> = task
        .seeds
        .iter()
        .map(|s| (s.label.as_str(), s.text.as_str()))
        .collect();
    let seed_refs: Vec<&str> = seed_pairs.iter().map(|p| p.1).collect();
    let labels: Vec<&str> = task.labels.iter().map(|l| l.name.as_str()).collect();
    if resumed > 0 {
        events.send(Event::Log(format!(
            "resumed: {resumed} requests were already journaled, {items} asked now"
        )));
    }
    let mean_words = length_strata::mean_words_per_class(&labels, &kept_pairs, &seed_pairs);
    events.send(Event::Log(format!(
        "kept items' mean words (seeds'): {}",
        length_strata::mean_words_line(&mean_words)
    )));
    Ok(Outcome {
        items,
        kept: kept_pairs.len(),
        cancelled: control.is_stopped(),
        diversity: (diversity(&kept_refs), diversity(&seed_refs)),
        short,
        mean_words,
    })
}

/// What makes a server's requests the same as an earlier run's: the task's labels, seeds and
/// wording, every generation setting (the seed above all) and the server and model; its
/// connection settings (concurrency, timeouts, retries) do not count. FNV-1a of that, in hex.
pub fn plan_key(task: &Task, settings: &GenerateSettings) -> String {
    let server = settings
        .remote
        .as_ref()
        .map(|r| json!([r.endpoint.base(), r.endpoint.model]));
    let plan = GenerateSettings {
        remote: None,
        ..settings.clone()
    };
    let text = json!([task, plan, server]).to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The requests of plan `key` the journal holds: number → (item, prompt).
fn journaled_requests(
    ws: &Mutex<Workspace>,
    key: &str,
) -> std::collections::HashMap<u64, (ItemId, String)> {
    let w = ws.lock().unwrap_or_else(|e| e.into_inner());
    w.state()
        .items()
        .iter()
        .filter_map(|it| {
            let o = it.original();
            (o.meta.get("plan")?.as_str()? == key).then_some(())?;
            let index = o.meta.get("request")?.as_u64()?;
            Some((index, (it.id().clone(), o.prompt.clone()?)))
        })
        .collect()
}

/// The screen's line for a judging server.
pub(super) fn remote_summary(r: &crate::llm::remote::Remote, filters: &FilterSettings) -> String {
    format!(
        "judge {} on {} (model {}, log-probabilities of the label words)",
        filters.judge.name(),
        r.client().endpoint(),
        r.client().model()
    )
}

/// An item the recheck judges again, as it stands now.
struct Target {
    id: ItemId,
    label: String,
    text: String,
    mean_logprob: Option<f64>,
    /// Whether an earlier band judged it: a band cleared since must clear its verdict too.
    had_likelihood: bool,
}

/// The likelihood verdict of a recheck: the band's, when one is set and the writer gave a
/// log-probability; a pass that says why when it gave none (a server, a hand-written text) or
/// when the band that once judged the item is cleared.
fn recheck_likelihood(settings: &FilterSettings, t: &Target) -> Option<Verdict> {
    match (settings.likelihood_band(), t.mean_logprob) {
        (true, Some(lp)) => likelihood(settings, lp),
        (true, None) => Some(Verdict {
            reason: "no log-probability recorded for this text: the band does not apply".into(),
            ..Verdict::pass(LIKELIHOOD)
        }),
        (false, _) => t.had_likelihood.then(|| Verdict::pass(LIKELIHOOD)),
    }
}

/// Runs every filter stage again on `items` (their current text and label), e.g. after an edit.
/// An item is not compared with itself.
pub fn recheck(
    job: JobId,
    model: &LoadedModel,
    ws: &Mutex<Workspace>,
    items: &[ItemId],
    filters: &FilterSettings,
    events: &Sink,
    judges: &mut Judges,
) -> anyhow::Result<usize> {
    events.send(Event::JobStarted {
        job,
        kind: super::event::JobKind::Recheck,
        total: items.len(),
    });
    let task = task_of(ws);
    let templates = Templates::for_task(&task)?;
    let targets: Vec<Target> = {
        let w = ws.lock().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .filter_map(|id| {
                w.state().get(id.as_str()).map(|it| Target {
                    id: id.clone(),
                    label: it.label().to_string(),
                    text: it.text().to_string(),
                    mean_logprob: it.original().mean_logprob(),
                    had_likelihood: it.verdicts().iter().any(|v| v.stage == LIKELIHOOD),
                })
            })
            .collect()
    };
    events.send(Event::AwaitingLabelCheck {
        job,
        items: targets.iter().map(|t| t.id.clone()).collect(),
    });
    let texts: Vec<&str> = targets.iter().map(|t| t.text.as_str()).collect();
    let remote_judge = filters
        .remote_judge
        .clone()
        .filter(|_| filters.label_consistency)
        .map(|r| crate::llm::remote::Remote::connect(*r))
        .transpose()?;
    let (preds, filter_settings) = if let Some(r) = &remote_judge {
        let classifier = remote_classifier(r, &task, &templates, filters)?;
        (classifier.classify(&texts)?, filters.clone())
    } else if filters.label_consistency {
        let r = judge(judges, job, model, &task, &templates, filters, events)?;
        let settings = r.settings(filters);
        let classifier = Classifier::new(
            r.model(model),
            &model.tokenizer,
            &task,
            &templates,
            consistency_classifier(&task, &settings),
        )?;
        (classifier.classify(&texts)?, settings)
    } else {
        (Vec::new(), filters.clone())
    };
    let filter_settings = &filter_settings;
    for (i, t) in targets.iter().enumerate() {
        let (id, label, text) = (&t.id, &t.label, &t.text);
        // Duplicates are judged against the items written before it, as when it was written
        // (copied out, so the signatures are built without the lock).
        let earlier = {
            let w = ws.lock().unwrap_or_else(|e| e.into_inner());
            let items = w.state().items();
            let before = w.state().position(id.as_str()).unwrap_or(items.len());
            items[..before].to_vec()
        };
        let filters = Filters::after(&task, filter_settings.clone(), &earlier);
        let mut verdicts = vec![
            filters.malformed(text, None),
            filters.exact_dup(text),
            filters.near_dup(text),
        ];
        verdicts.extend(recheck_likelihood(filter_settings, t));
        if let Some(p) = preds.get(i) {
            verdicts.push(label_consistency(filter_settings.min_margin, label, p));
        }
        let sent: Vec<(String, bool)> =
            verdicts.iter().map(|v| (v.stage.clone(), v.pass)).collect();
        ws.lock().unwrap_or_else(|e| e.into_inner()).append_all(
            verdicts
                .into_iter()
                .map(|verdict| RecordBody::Verdict {
                    item_id: id.clone(),
                    verdict,
                })
                .collect(),
        )?;
        for (stage, pass) in sent {
            events.send(Event::Verdict {
                item: id.clone(),
                stage,
                pass,
            });
        }
        events.send(Event::LabelChecked {
            job,
            items: vec![id.clone()],
        });
    }
    Ok(targets.len())
}
