//! `seedforge train --members K` end to end on the tiny model the test writes: K runs under
//! `members/`, each holding out another share of the seeds; member 0 is the plain run of the
//! same seed; the run's adapter is the exact mean of the members' weight updates, read by PEFT's
//! rules (`lora_alpha / r`); a staged soup starts each member from its own first-stage member;
//! and a soup is refused for `--resume` with a message that says why.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const TASK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/task.toml");

fn seedforge(model: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.env("SEEDFORGE_MODEL", model);
    c
}

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "seedforge failed:\n{err}");
    err
}

fn train(model: &Path, out: &Path, extra: &[&str]) -> String {
    let mut c = seedforge(model);
    c.args([
        "train",
        "--task",
        TASK,
        "--device",
        "cpu",
        "--epochs",
        "3",
        "--max-len",
        "768",
        "--seed",
        "5",
        "--out",
    ])
    .arg(out)
    .args(extra);
    ok(c.output().unwrap())
}

/// (r, lora_alpha) from a PEFT `adapter_config.json`.
fn rank_alpha(dir: &Path) -> (usize, f64) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    (
        v["r"].as_u64().unwrap() as usize,
        v["lora_alpha"].as_f64().unwrap(),
    )
}

/// Every tensor of a PEFT adapter: name → (shape, values).
fn tensors(dir: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let x = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (v.shape().to_vec(), x))
        })
        .collect()
}

/// `ΔW = (alpha/r)·B·A` of every adapted projection, `[out, in]`, computed from the files as
/// PEFT would.
fn deltas(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let (r, alpha) = rank_alpha(dir);
    let s = (alpha / r as f64) as f32;
    let t = tensors(dir);
    let mut out = BTreeMap::new();
    for (name, (bs, b)) in &t {
        let Some(stem) = name.strip_suffix(".lora_B.weight") else {
            continue;
        };
        let (as_, a) = &t[&format!("{stem}.lora_A.weight")];
        let (o, rank, i) = (bs[0], bs[1], as_[1]);
        assert_eq!(rank, r, "{name}");
        let mut d = vec![0.0f32; o * i];
        for row in 0..o {
            for col in 0..i {
                d[row * i + col] = s * (0..r).map(|k| b[row * r + k] * a[k * i + col]).sum::<f32>();
            }
        }
        out.insert(stem.to_string(), d);
    }
    out
}

fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

#[test]
fn a_soup_is_the_mean_of_members_that_hold_out_different_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);

    let plain = tmp.path().join("plain");
    train(&model, &plain, &[]);
    let soup = tmp.path().join("soup");
    let said = train(&model, &soup, &["--members", "3"]);
    for i in 1..=3 {
        assert!(said.contains(&format!("soup member {i} of 3")), "{said}");
    }

    // Three member runs, each a whole run folder, holding out shares 0, 1, 2.
    for i in 0..3 {
        let m = soup.join("members").join(i.to_string());
        assert!(m.join("adapter_config.json").is_file(), "{}", m.display());
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(m.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["train"]["fold"]["index"], i, "{cfg}");
        assert_eq!(cfg["train"]["fold"]["seed"], 5);
        assert_eq!(cfg["train"]["members"], 1);
    }
    let top: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(soup.join("config.json")).unwrap()).unwrap();
    assert_eq!(top["train"]["members"], 3);
    let trained = seedforge::train::run::read_trained_on(&soup)
        .unwrap()
        .unwrap();
    assert_eq!(trained.members(), 3);
    assert!(
        trained.seeds_only(),
        "a soup of seeds-only runs is a seeds-only twin"
    );

    // Member 0 is the plain run of the same seed, bit for bit.
    let (p, m0) = (tensors(&plain), tensors(&soup.join("members/0")));
    assert_eq!(p.keys().collect::<Vec<_>>(), m0.keys().collect::<Vec<_>>());
    for (k, (_, x)) in &p {
        assert_eq!(x, &m0[k].1, "{k}");
    }

    // The soup's adapter: rank 3·8 read at scale 1, and ΔW the mean of the members' ΔW.
    let (r, alpha) = rank_alpha(&soup);
    assert_eq!((r, alpha), (24, 24.0));
    let members: Vec<_> = (0..3)
        .map(|i| deltas(&soup.join("members").join(i.to_string())))
        .collect();
    // The members differ (otherwise a mean of copies would pass).
    let any = members[0].keys().next().unwrap().clone();
    let spread: Vec<f32> = members[0][&any]
        .iter()
        .zip(&members[1][&any])
        .map(|(a, b)| a - b)
        .collect();
    assert!(max_abs(&spread) > 1e-4, "the members are the same run");
    let souped = deltas(&soup);
    assert_eq!(souped.len(), members[0].len());
    for (k, d) in &souped {
        let want: Vec<f32> = (0..d.len())
            .map(|j| members.iter().map(|m| m[k][j]).sum::<f32>() / 3.0)
            .collect();
        let err: Vec<f32> = d.iter().zip(&want).map(|(a, b)| a - b).collect();
        assert!(
            max_abs(&err) <= 1e-6 + 1e-5 * max_abs(&want),
            "{k}: off by {}",
            max_abs(&err)
        );
    }

    // The soup's metrics: every member's steps, numbered on as one curve.
    let steps = |run: &Path| -> Vec<usize> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["event"] == "step").then(|| v["step"].as_u64().unwrap() as usize)
            })
            .collect()
    };
    let total: usize = (0..3)
        .map(|i| steps(&soup.join("members").join(i.to_string())).len())
        .sum();
    assert!(total > 3);
    assert_eq!(steps(&soup), (1..=total).collect::<Vec<_>>());

    // A soup is not resumable, and says so.
    let out = seedforge(&model)
        .args(["train", "--device", "cpu", "--resume"])
        .arg(&soup)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("soup of 3 runs"), "{err}");

    // Staged: each member trains on from its own first-stage member.
    let staged = tmp.path().join("staged");
    train(
        &model,
        &staged,
        &["--members", "3", "--start-from", soup.to_str().unwrap()],
    );
    for i in 0..3 {
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                staged
                    .join("members")
                    .join(i.to_string())
                    .join("config.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let from = cfg["started_from"].as_str().unwrap();
        assert!(
            Path::new(from).ends_with(Path::new("members").join(i.to_string())),
            "member {i} started from {from}"
        );
    }
    let top: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staged.join("config.json")).unwrap())
            .unwrap();
    assert!(
        top["started_from"].as_str().unwrap().ends_with("soup"),
        "{top}"
    );
}

#[test]
fn a_soup_asks_for_one_to_sixteen_members() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.gguf");
    common::tiny::write_gguf(&model);
    for bad in ["0", "17"] {
        let out = seedforge(&model)
            .args([
                "train",
                "--task",
                TASK,
                "--device",
                "cpu",
                "--members",
                bad,
                "--out",
            ])
            .arg(tmp.path().join("x"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("1 to 16 members"), "{err}");
    }
}
