//! Import of every format and every bad-input case, on the real benchmark files in
//! `../shared/datasets` (read in place; CSV and JSONL variants are written to a temporary folder
//! from the real SST-2 rows, with bad rows added at known lines). Expected counts were taken
//! with awk/cut/uniq on the files, not with this code.

use std::path::{Path, PathBuf};

use seedforge::data::import::{
    Format, ImportError, ImportOptions, LabelMap, OnBadRow, ProblemKind, SampleOptions, SeedRows,
    import_file, sample_per_class,
};

const SST2_DEV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/sst2/dev.tsv"
);
const SST2_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/sst2/train.tsv"
);
const TREC_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/trec/train_5500.label"
);
const TREC_TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/trec/TREC_10.label"
);

fn count(rows: &[seedforge::data::import::Row], label: &str) -> usize {
    rows.iter().filter(|r| r.label == label).count()
}

fn sst2_map() -> LabelMap {
    "0=negative,1=positive".parse().unwrap()
}

/// The real SST-2 dev rows (text, label), read independently of the importer.
fn dev_rows() -> Vec<(String, String)> {
    std::fs::read_to_string(SST2_DEV)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (t, l) = l.split_once('\t').unwrap();
            (t.trim().to_string(), l.to_string())
        })
        .collect()
}

#[test]
fn sst2_tsv_with_header_guessed() {
    let imp = import_file(Path::new(SST2_DEV), &ImportOptions::default()).unwrap();
    assert_eq!(imp.format, Format::Tsv);
    assert!(imp.problems.is_empty(), "{:?}", imp.problems);
    // awk: 872 rows, 428 labelled 0 and 444 labelled 1.
    assert_eq!(imp.rows.len(), 872);
    assert_eq!((count(&imp.rows, "0"), count(&imp.rows, "1")), (428, 444));
    assert_eq!(imp.labels(None), ["0", "1"]);
    assert_eq!(imp.rows[0].line, 2);
    assert_eq!(
        imp.rows[0].text,
        "it 's a charming and often affecting journey ."
    );
    assert!(imp.columns.contains("\"sentence\"") && imp.columns.contains("header row skipped"));
}

#[test]
fn sst2_train_with_label_map_and_the_papers_sample() {
    let opts = ImportOptions {
        label_map: Some(sst2_map()),
        ..Default::default()
    };
    let imp = import_file(Path::new(SST2_TRAIN), &opts).unwrap();
    // awk: 60,614 rows: 26,786 negative (0) and 33,828 positive (1).
    assert_eq!(imp.rows.len(), 60_614);
    assert_eq!(count(&imp.rows, "negative"), 26_786);
    assert_eq!(count(&imp.rows, "positive"), 33_828);
    let labels = imp.labels(Some(&sst2_map()));
    assert_eq!(labels, ["negative", "positive"]);
    let so = SampleOptions {
        per_class: 4,
        seed: 0,
        min_words: 6,
        rows: SeedRows::Any,
    };
    let s = sample_per_class(&imp.rows, &labels, &so);
    assert_eq!(s.rows.len(), 8);
    assert_eq!(count(&s.rows, "negative"), 4);
    let file = std::fs::read_to_string(SST2_TRAIN).unwrap();
    let file_lines: Vec<&str> = file.lines().collect();
    for r in &s.rows {
        assert!(r.text.split_whitespace().count() >= 6, "{:?}", r.text);
        // Each drawn row is the real row at its line, label mapped.
        let (t, l) = file_lines[r.line - 1].split_once('\t').unwrap();
        assert_eq!(t.trim(), r.text);
        assert_eq!(if l == "0" { "negative" } else { "positive" }, r.label);
    }
    assert_eq!(
        s,
        sample_per_class(&imp.rows, &labels, &so),
        "same seed, same sample"
    );
    let other = sample_per_class(&imp.rows, &labels, &SampleOptions { seed: 1, ..so });
    assert_ne!(s.rows, other.rows);
    // Pinned: the sample for seed 0 must never change across releases (reproducibility of
    // experiments). These line numbers were produced once by this release and frozen.
    let lines: Vec<usize> = s.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, PINNED_SST2_SEED0_LINES, "the seed-0 sample changed");
}

#[test]
fn sst2_train_is_a_file_of_phrases_and_seeds_are_whole_reviews() {
    let opts = ImportOptions {
        label_map: Some(sst2_map()),
        ..Default::default()
    };
    let imp = import_file(Path::new(SST2_TRAIN), &opts).unwrap();
    let labels = imp.labels(Some(&sst2_map()));
    let so = SampleOptions {
        per_class: 4,
        seed: 0,
        min_words: 6,
        rows: SeedRows::Auto,
    };
    let s = sample_per_class(&imp.rows, &labels, &so);
    // Counted with a separate Python script (lower-cased word tuples, every shorter run of each
    // distinct text looked up): 53,248 of 60,321 distinct texts are runs of a longer row.
    assert!(
        s.fragment_rule
            .starts_with("53248 of 60321 distinct texts (88%)"),
        "{}",
        s.fragment_rule
    );
    assert!(s.fragment_rule.ends_with("drawing whole texts only"));
    assert_eq!(s.rows.len(), 8);
    // No drawn text sits inside another row of the file, word for word.
    let padded: Vec<String> = imp
        .rows
        .iter()
        .map(|r| {
            format!(
                " {} ",
                r.text.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    for r in &s.rows {
        let me = format!(
            " {} ",
            r.text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        let holders = padded
            .iter()
            .filter(|p| p.len() > me.len() && p.contains(&me))
            .count();
        assert_eq!(holders, 0, "{:?} is a fragment", r.text);
    }
    // The draw of experiments from before the rule stays available as `any`.
    let any = sample_per_class(
        &imp.rows,
        &labels,
        &SampleOptions {
            rows: SeedRows::Any,
            ..so
        },
    );
    let lines: Vec<usize> = any.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, PINNED_SST2_SEED0_LINES);
}

#[test]
fn trec_is_not_a_file_of_phrases_and_its_draw_is_unchanged() {
    let imp = import_file(Path::new(TREC_TRAIN), &ImportOptions::default()).unwrap();
    let labels = imp.labels(None);
    let so = |rows| SampleOptions {
        per_class: 4,
        seed: 0,
        min_words: 0,
        rows,
    };
    let auto = sample_per_class(&imp.rows, &labels, &so(SeedRows::Auto));
    // The separate script: 2 of 5,379 distinct questions sit inside a longer one.
    assert!(
        auto.fragment_rule
            .starts_with("2 of 5379 distinct texts (0%)"),
        "{}",
        auto.fragment_rule
    );
    assert_eq!(auto.fragments, 0);
    assert_eq!(
        auto.rows,
        sample_per_class(&imp.rows, &labels, &so(SeedRows::Any)).rows
    );
}

const PINNED_SST2_SEED0_LINES: [usize; 8] = [4187, 6907, 50283, 54944, 24739, 24914, 42782, 44108];

#[test]
fn trec_train_latin1_line_66_is_kept_with_a_warning() {
    let imp = import_file(Path::new(TREC_TRAIN), &ImportOptions::default()).unwrap();
    assert_eq!(imp.format, Format::Trec);
    assert_eq!(imp.rows.len(), 5452);
    assert_eq!(imp.problems.len(), 1, "{:?}", imp.problems);
    let p = &imp.problems[0];
    assert_eq!(
        (p.line, p.kind, p.kept),
        (66, ProblemKind::InvalidUtf8, true)
    );
    let shown = p.to_string();
    assert!(
        shown.contains("train_5500.label:66: invalid UTF-8"),
        "{shown}"
    );
    assert!(shown.contains("row kept"), "{shown}");
    let row66 = imp.rows.iter().find(|r| r.line == 66).unwrap();
    // Byte 0xF0 read as Latin-1 is U+00F0.
    assert_eq!(
        row66.text,
        "Which city has the oldest relationship as a sister\u{f0}city with Los Angeles ?"
    );
    assert_eq!(row66.label, "LOC");
    // cut | sort | uniq -c on the file.
    let expected = [
        ("ABBR", 86),
        ("DESC", 1162),
        ("ENTY", 1250),
        ("HUM", 1223),
        ("LOC", 835),
        ("NUM", 896),
    ];
    assert_eq!(imp.labels(None), expected.map(|(l, _)| l));
    for (l, n) in expected {
        assert_eq!(count(&imp.rows, l), n, "{l}");
    }
    // Fine labels: 50 distinct.
    let fine = import_file(
        Path::new(TREC_TRAIN),
        &ImportOptions {
            trec_fine: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fine.labels(None).len(), 50);
    assert_eq!(fine.rows[0].label, "DESC:manner");
    assert_eq!(
        fine.rows[0].text,
        "How did serfdom develop in and then leave Russia ?"
    );
}

#[test]
fn trec_train_under_stop_stops_at_line_66() {
    let opts = ImportOptions {
        on_bad_row: OnBadRow::Stop,
        ..Default::default()
    };
    match import_file(Path::new(TREC_TRAIN), &opts) {
        Err(ImportError::Stopped(p)) => {
            assert_eq!((p.line, p.kind), (66, ProblemKind::InvalidUtf8));
            assert!(p.file.ends_with("trec/train_5500.label"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trec_test_file_is_clean() {
    let imp = import_file(Path::new(TREC_TEST), &ImportOptions::default()).unwrap();
    assert!(imp.problems.is_empty());
    assert_eq!(imp.rows.len(), 500);
    assert_eq!(count(&imp.rows, "NUM"), 113);
    assert_eq!(count(&imp.rows, "HUM"), 65);
}

#[test]
fn trec_unknown_labels_with_a_map_and_malformed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    // The real test file's first 20 lines, then a line without a label, then one without text.
    let real: Vec<&str> = include_str_lines(TREC_TEST)
        .into_iter()
        .take(20)
        .collect::<Vec<_>>();
    let mut text = real.join("\n");
    text.push_str("\nno label here\nLOC:city\n");
    let path = write(tmp.path(), "q.txt", text.as_bytes());
    // HUM is left out of the map, so its questions are unknown labels.
    let map: LabelMap = "NUM=number,LOC=location,DESC=description,ENTY=entity,ABBR=abbreviation"
        .parse()
        .unwrap();
    let opts = ImportOptions {
        label_map: Some(map),
        ..Default::default()
    };
    let imp = import_file(&path, &opts).unwrap();
    assert_eq!(imp.format, Format::Trec, "guessed from the content");
    let kinds: Vec<(usize, ProblemKind)> = imp.problems.iter().map(|p| (p.line, p.kind)).collect();
    // `head -20 TREC_10.label | grep -n ^HUM`: lines 3, 7, 12, 14, 18.
    let hum = [3, 7, 12, 14, 18];
    let mut expected: Vec<(usize, ProblemKind)> = hum
        .iter()
        .map(|&l| (l, ProblemKind::UnknownLabel))
        .collect();
    expected.push((21, ProblemKind::Malformed));
    expected.push((22, ProblemKind::Malformed));
    assert_eq!(kinds, expected);
    assert_eq!(imp.rows.len(), 15);
    assert!(
        imp.rows
            .iter()
            .all(|r| ["number", "location", "description", "entity"].contains(&r.label.as_str()))
    );
}

fn include_str_lines(path: &str) -> Vec<&'static str> {
    let s: &'static str = Box::leak(std::fs::read_to_string(path).unwrap().into_boxed_str());
    s.lines().collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[test]
fn csv_with_header_quoting_and_every_bad_row() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = dev_rows();
    // Header "label,sentence" (text second, to show columns are found by name), the first 100
    // real rows, then bad rows at known lines.
    let mut out = Vec::new();
    out.extend_from_slice(b"label,sentence\n");
    for (t, l) in &rows[..100] {
        out.extend_from_slice(format!("{l},{}\n", csv_quote(t)).as_bytes());
    }
    out.extend_from_slice(b"1,\"a quoted, \"\"multi-line\"\"\nreview\"\n"); // lines 102-103
    out.extend_from_slice(b"0,too,many\n"); // 104: ragged
    out.extend_from_slice(b"1,   \n"); // 105: empty text
    out.extend_from_slice(b"7,a fine film\n"); // 106: unknown label
    out.extend_from_slice(b",no label\n"); // 107: missing label
    out.extend_from_slice(b"1,caf\xe9 society\n"); // 108: Latin-1
    let path = write(tmp.path(), "sst2.csv", &out);
    let opts = ImportOptions {
        label_map: Some(sst2_map()),
        ..Default::default()
    };
    let imp = import_file(&path, &opts).unwrap();
    assert_eq!(imp.format, Format::Csv);
    let got: Vec<(usize, ProblemKind, bool)> = imp
        .problems
        .iter()
        .map(|p| (p.line, p.kind, p.kept))
        .collect();
    assert_eq!(
        got,
        [
            (104, ProblemKind::Ragged, false),
            (105, ProblemKind::EmptyText, false),
            (106, ProblemKind::UnknownLabel, false),
            (107, ProblemKind::MissingLabel, false),
            (108, ProblemKind::InvalidUtf8, true),
        ]
    );
    assert!(
        imp.problems[2]
            .to_string()
            .contains("label `7` is not in the label map (0, 1)")
    );
    assert_eq!(imp.rows.len(), 102);
    for (r, (t, l)) in imp.rows.iter().zip(&rows[..100]) {
        assert_eq!(&r.text, t);
        assert_eq!(r.label, if l == "0" { "negative" } else { "positive" });
    }
    assert_eq!(imp.rows[100].text, "a quoted, \"multi-line\"\nreview");
    assert_eq!(imp.rows[100].line, 102);
    assert_eq!(imp.rows[101].text, "caf\u{e9} society");

    // Stop: the first problem ends the import, naming file and line.
    let stop = ImportOptions {
        on_bad_row: OnBadRow::Stop,
        ..opts
    };
    match import_file(&path, &stop) {
        Err(ImportError::Stopped(p)) => {
            assert_eq!((p.line, p.kind), (104, ProblemKind::Ragged));
            assert!(
                p.to_string()
                    .starts_with(&format!("{}:104: wrong number of columns", path.display()))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_and_tsv_without_header_by_column_number_or_guess() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = dev_rows();
    let mut csv = String::new();
    let mut tsv = String::new();
    for (t, l) in &rows[..50] {
        csv.push_str(&format!("{l},{}\n", csv_quote(t)));
        tsv.push_str(&format!("{t}\t{l}\n"));
    }
    let csv_path = write(tmp.path(), "nohead.csv", csv.as_bytes());
    // Chosen by number (1-based).
    let opts = ImportOptions {
        text_col: Some("2".into()),
        label_col: Some("1".into()),
        ..Default::default()
    };
    let imp = import_file(&csv_path, &opts).unwrap();
    assert_eq!(imp.rows.len(), 50);
    assert_eq!(imp.rows[0].line, 1);
    assert_eq!(imp.rows[0].text, rows[0].0);
    assert!(imp.columns.contains("no header row"));
    // Guessed: two columns, the longer one is the text.
    let imp = import_file(&csv_path, &ImportOptions::default()).unwrap();
    assert_eq!(imp.rows[1].text, rows[1].0);
    assert_eq!(imp.rows[1].label, rows[1].1);
    // TSV, format named, header said absent.
    let tsv_path = write(tmp.path(), "data.txt", tsv.as_bytes());
    let opts = ImportOptions {
        format: Some(Format::Tsv),
        header: Some(false),
        ..Default::default()
    };
    let imp = import_file(&tsv_path, &opts).unwrap();
    assert_eq!(imp.rows.len(), 50);
    assert_eq!(imp.rows[49].text, rows[49].0);
    // A column that does not exist is an error naming the file.
    let bad = ImportOptions {
        text_col: Some("9".into()),
        ..Default::default()
    };
    let err = import_file(&csv_path, &bad).unwrap_err().to_string();
    assert!(
        err.contains("nohead.csv") && err.contains("no column 9"),
        "{err}"
    );
    let bad = ImportOptions {
        text_col: Some("review".into()),
        ..Default::default()
    };
    let err = import_file(Path::new(SST2_DEV), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column named `review` (columns: sentence, label)"),
        "{err}"
    );
}

#[test]
fn tsv_ragged_and_empty_rows_from_the_real_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text: Vec<String> = std::fs::read_to_string(SST2_DEV)
        .unwrap()
        .lines()
        .take(11)
        .map(String::from)
        .collect();
    text.push("an extra\tcolumn\t1".into()); // line 12
    text.push("\t0".into()); // line 13
    text.push("no tab at all".into()); // line 14
    let path = write(tmp.path(), "dev.tsv", (text.join("\n") + "\n").as_bytes());
    let imp = import_file(&path, &ImportOptions::default()).unwrap();
    let got: Vec<(usize, ProblemKind)> = imp.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        got,
        [
            (12, ProblemKind::Ragged),
            (13, ProblemKind::EmptyText),
            (14, ProblemKind::Ragged)
        ]
    );
    assert_eq!(imp.rows.len(), 10);
}

#[test]
fn jsonl_with_chosen_fields_and_every_bad_line() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = dev_rows();
    let mut out = Vec::new();
    for (t, l) in &rows[..30] {
        // Labels as integers, as Hugging Face writes them; the text nested.
        let line = serde_json::json!({"idx": 1, "data": {"sentence": t}, "label": l.parse::<i64>().unwrap()});
        out.extend_from_slice(format!("{line}\n").as_bytes());
    }
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"broken\"\n"); // 31: invalid JSON
    out.extend_from_slice(b"[1,2]\n"); // 32: not an object
    out.extend_from_slice(b"{\"label\":1}\n"); // 33: no text field
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"x\"}}\n"); // 34: no label field
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"x\"},\"label\":0.5}\n"); // 35: not a label
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"  \"},\"label\":1}\n"); // 36: empty text
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"na\xefve\"},\"label\":1}\n"); // 37: Latin-1
    out.extend_from_slice(b"{\"data\":{\"sentence\":\"x\"},\"label\":2}\n"); // 38: unknown label
    out.extend_from_slice(b"\n{\"data\":{\"sentence\":7},\"label\":1}\r\n"); // 40: text not a string
    let path = write(tmp.path(), "sst2.jsonl", &out);
    let opts = ImportOptions {
        text_col: Some("data.sentence".into()),
        label_map: Some(sst2_map()),
        ..Default::default()
    };
    let imp = import_file(&path, &opts).unwrap();
    assert_eq!(imp.format, Format::Jsonl);
    let got: Vec<(usize, ProblemKind)> = imp.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        got,
        [
            (31, ProblemKind::Malformed),
            (32, ProblemKind::Malformed),
            (33, ProblemKind::MissingField),
            (34, ProblemKind::MissingField),
            (35, ProblemKind::Malformed),
            (36, ProblemKind::EmptyText),
            (37, ProblemKind::InvalidUtf8),
            (38, ProblemKind::UnknownLabel),
            (40, ProblemKind::Malformed),
        ]
    );
    assert_eq!(imp.rows.len(), 31);
    assert_eq!(imp.rows[0].text, rows[0].0);
    assert_eq!(
        imp.rows[0].label,
        if rows[0].1 == "0" {
            "negative"
        } else {
            "positive"
        }
    );
    assert_eq!(imp.rows[30].text, "na\u{ef}ve");
    assert!(imp.columns.contains("data.sentence"));
}

#[test]
fn missing_file_and_unguessable_format_are_errors_not_panics() {
    let err = import_file(Path::new("/nonexistent/x.tsv"), &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Io { .. }));
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "notes", b"just some words\n");
    assert!(matches!(
        import_file(&p, &ImportOptions::default()),
        Err(ImportError::UnknownFormat { .. })
    ));
    let p = write(tmp.path(), "empty.csv", b"");
    assert!(
        import_file(&p, &ImportOptions::default())
            .unwrap()
            .rows
            .is_empty()
    );
    let p = write(tmp.path(), "three.csv", b"a,b,c\nd,e,f\n");
    let err = import_file(&p, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot tell which of the 3 columns"), "{err}");
}

#[test]
fn unlabelled_texts_read_from_one_column_files_and_label_less_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = dev_rows();
    // One text a line: the SST-2 dev sentences without their labels.
    let lines = tmp.path().join("pool.txt");
    let body: String = dev[..50].iter().map(|(t, _)| format!("{t}\n")).collect();
    std::fs::write(&lines, body).unwrap();
    let jsonl = tmp.path().join("pool.jsonl");
    let body: String = dev[..50]
        .iter()
        .map(|(t, _)| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    std::fs::write(&jsonl, body).unwrap();
    let opts = ImportOptions {
        unlabelled: true,
        ..ImportOptions::default()
    };
    for (path, format) in [(&lines, Some(Format::Tsv)), (&jsonl, None)] {
        let imported = import_file(
            path,
            &ImportOptions {
                format,
                ..opts.clone()
            },
        )
        .unwrap();
        assert!(imported.problems.is_empty(), "{:?}", imported.problems);
        let texts: Vec<&str> = imported.rows.iter().map(|r| r.text.as_str()).collect();
        let expected: Vec<&str> = dev[..50].iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, expected, "{}", path.display());
        assert!(imported.rows.iter().all(|r| r.label.is_empty()));
        // Without the option, the same files are refused or every row is a problem.
        match import_file(
            path,
            &ImportOptions {
                format,
                ..ImportOptions::default()
            },
        ) {
            Err(_) => {}
            Ok(i) => assert!(
                i.rows.is_empty() && i.problems.len() == 50,
                "{}",
                path.display()
            ),
        }
    }
    // A labelled file read as unlabelled keeps its (mapped) labels: accuracy can be measured.
    let imported = import_file(
        Path::new(SST2_DEV),
        &ImportOptions {
            label_map: Some(sst2_map()),
            ..opts
        },
    )
    .unwrap();
    assert_eq!(imported.rows.len(), dev.len());
    assert_eq!(count(&imported.rows, "positive"), 444);
}
