//! What a PromQL expression reads: the metric names of its selectors (plain
//! `name{…}` or quoted `{"name", …}`) and every label name it uses (in
//! matchers and in `by`/`without`/`on`/`ignoring`/`group_*` lists). Enough
//! of PromQL's lexical grammar for the expressions Lumen writes; anything
//! it does not understand is an error, so a test never passes by skipping.

use std::collections::BTreeSet;

/// The names an expression reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Metric names.
    pub metrics: BTreeSet<String>,
    /// Each selector's metric, in order, as often as it is selected.
    pub selections: Vec<String>,
    /// Label names.
    pub labels: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
    /// `=`, `!=`, `=~`, `!~`, comparison and arithmetic operators.
    Op(String),
    Number,
    /// `[5m]`, `[300s:1m]`.
    Range,
}

fn lex(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '+' && matches!(chars[i - 1], 'e' | 'E'))
            {
                i += 1;
            }
            out.push(Token::Number);
        } else if c == '"' || c == '\'' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in {expr}")),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("dangling escape")?);
                        i += 2;
                    }
                    Some(&q) if q == quote => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            out.push(Token::Range);
        } else if "(){},".contains(c) {
            out.push(Token::Punct(c));
            i += 1;
        } else if "=!<>~+-*/%^".contains(c) {
            let start = i;
            while i < chars.len() && "=!<>~".contains(chars[i]) && i - start < 2 {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            out.push(Token::Op(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected {c:?} in {expr}"));
        }
    }
    Ok(out)
}

const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric and label names `expr` reads.
pub fn references(expr: &str) -> Result<References, String> {
    let tokens = lex(expr)?;
    let mut refs = References::default();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if LABEL_LISTS.contains(&word.as_str()) => {
                // `by (a, "b.c")`; `group_left` may stand without a list.
                if tokens.get(i + 1) == Some(&Token::Punct('(')) {
                    i += 2;
                    while i < tokens.len() && tokens[i] != Token::Punct(')') {
                        match &tokens[i] {
                            Token::Ident(l) | Token::Str(l) => {
                                refs.labels.insert(l.clone());
                            }
                            Token::Punct(',') => {}
                            other => return Err(format!("{other:?} in a label list of {expr}")),
                        }
                        i += 1;
                    }
                }
                i += 1;
            }
            Token::Ident(word) if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) => i += 1,
            Token::Ident(word) => {
                let aggregation_clause = matches!(
                    tokens.get(i + 1),
                    Some(Token::Ident(w)) if w == "by" || w == "without"
                );
                if tokens.get(i + 1) == Some(&Token::Punct('(')) || aggregation_clause {
                    // A function, or an aggregation (`sum by (…) (…)`).
                    i += 1;
                } else {
                    refs.metrics.insert(word.clone());
                    refs.selections.push(word.clone());
                    i += 1;
                }
            }
            Token::Punct('{') => {
                i += 1;
                while i < tokens.len() && tokens[i] != Token::Punct('}') {
                    match (&tokens[i], tokens.get(i + 1)) {
                        (Token::Ident(l) | Token::Str(l), Some(Token::Op(op)))
                            if ["=", "!=", "=~", "!~"].contains(&op.as_str()) =>
                        {
                            if l == "__name__" {
                                if let Some(Token::Str(name)) = tokens.get(i + 2) {
                                    refs.metrics.insert(name.clone());
                                    refs.selections.push(name.clone());
                                }
                            } else {
                                refs.labels.insert(l.clone());
                            }
                            i += 3;
                        }
                        // `{"metric.name", …}`: a quoted name alone.
                        (Token::Str(name), _) => {
                            refs.metrics.insert(name.clone());
                            refs.selections.push(name.clone());
                            i += 1;
                        }
                        (Token::Punct(','), _) => i += 1,
                        (other, _) => return Err(format!("{other:?} in a selector of {expr}")),
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn plain_and_quoted_names_and_every_label_are_found() {
        let r = references(
            r#"histogram_quantile(0.95, sum by (le, "http.route") (rate({"http.server.request.duration_bucket", service_name="a \"b\""}[5m]))) / on() group_left count(up{job=~"x"} offset 5m) > bool 0.5e+1"#,
        )
        .expect("parses");
        assert_eq!(
            r.metrics,
            set(&["http.server.request.duration_bucket", "up"])
        );
        assert_eq!(r.labels, set(&["le", "http.route", "service_name", "job"]));
        let r = references("100 * a_total{x=\"1\"} / b and vector(0)").expect("parses");
        assert_eq!(r.metrics, set(&["a_total", "b"]));
        assert!(references("a{x=\"1}").is_err());
        let metrics = |e: &str| references(e).expect("parses").metrics;
        assert_eq!(metrics("max(maturity_score)"), set(&["maturity_score"]));
        assert_eq!(
            metrics("sum(rate(http_server_requests_total[5m])) by (http_route)"),
            set(&["http_server_requests_total"])
        );
        assert_eq!(metrics("roi_percentage < 300"), set(&["roi_percentage"]));
        let r = references("a / 2 or (b) and on() (c) unless ignoring(x) (d)").expect("parses");
        assert_eq!(
            r.metrics,
            set(&["a", "b", "c", "d"]),
            "set operators take operands"
        );
        assert_eq!(r.labels, set(&["x"]));
    }
}
