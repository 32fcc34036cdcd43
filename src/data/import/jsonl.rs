//! One JSON object a line, with the text and the label in chosen fields.

use serde_json::Value;

use super::{Collector, ImportError, LABEL_NAMES, ProblemKind, TEXT_NAMES, numbered_lines};

pub fn read(bytes: &[u8], c: &mut Collector<'_>) -> Result<String, ImportError> {
    let text_field = c.opts().text_col.clone();
    let label_field = c.opts().label_col.clone();
    let mut used: Option<(String, String)> = None;
    for (line_no, line) in numbered_lines(bytes) {
        let line = c.decode(line_no, line)?;
        let obj = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                c.problem(line_no, ProblemKind::Malformed, "not a JSON object", false)?;
                continue;
            }
            Err(e) => {
                c.problem(
                    line_no,
                    ProblemKind::Malformed,
                    format!("invalid JSON: {e}"),
                    false,
                )?;
                continue;
            }
        };
        let obj = Value::Object(obj);
        let Some((tname, text)) = field(&obj, text_field.as_deref(), TEXT_NAMES) else {
            let what = text_field.as_deref().unwrap_or("text");
            c.problem(
                line_no,
                ProblemKind::MissingField,
                format!("no field `{what}`"),
                false,
            )?;
            continue;
        };
        let empty = Value::String(String::new());
        let found = field(&obj, label_field.as_deref(), LABEL_NAMES)
            .or_else(|| c.opts().unlabelled.then(|| ("label".to_string(), &empty)));
        let Some((lname, label)) = found else {
            let what = label_field.as_deref().unwrap_or("label");
            c.problem(
                line_no,
                ProblemKind::MissingField,
                format!("no field `{what}`"),
                false,
            )?;
            continue;
        };
        let Value::String(text) = text else {
            c.problem(
                line_no,
                ProblemKind::Malformed,
                format!("field `{tname}` is not a string"),
                false,
            )?;
            continue;
        };
        let label = match label {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            other => {
                c.problem(
                    line_no,
                    ProblemKind::Malformed,
                    format!("field `{lname}` holds {other}, not a label"),
                    false,
                )?;
                continue;
            }
        };
        let id = match c.opts().id_col.clone() {
            None => None,
            Some(name) => match field(&obj, Some(&name), &[]) {
                Some((_, Value::String(s))) => Some(s.clone()),
                Some((_, Value::Number(n))) => Some(n.to_string()),
                Some((_, other)) => {
                    c.problem(
                        line_no,
                        ProblemKind::Malformed,
                        format!("field `{name}` holds {other}, not an id"),
                        false,
                    )?;
                    continue;
                }
                None => {
                    c.problem(
                        line_no,
                        ProblemKind::MissingField,
                        format!("no field `{name}`"),
                        false,
                    )?;
                    continue;
                }
            },
        };
        used.get_or_insert_with(|| (tname.clone(), lname.clone()));
        c.row_with_id(line_no, text, &label, id)?;
    }
    Ok(match used {
        Some((t, l)) => format!("text = field \"{t}\", label = field \"{l}\""),
        None => "no usable rows".into(),
    })
}

/// The chosen field (`a.b` reaches into nested objects), else the first usual name present.
fn field<'v>(obj: &'v Value, chosen: Option<&str>, usual: &[&str]) -> Option<(String, &'v Value)> {
    match chosen {
        Some(name) => {
            let direct = obj.get(name);
            let nested = || name.split('.').try_fold(obj, |v, key| v.get(key));
            direct.or_else(nested).map(|v| (name.to_string(), v))
        }
        None => usual
            .iter()
            .find_map(|n| obj.get(*n).map(|v| (n.to_string(), v))),
    }
}
