//! `{column}` templates: parsed once, rendered for every key, and reversed (a rendered key
//! back to the column values) for `verify`'s extras and the data-access layer's reads.

use super::{BinaryEncoding, ColumnType, MapError, TimeFormat};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Col(String),
}

/// A `{column}` template, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed {{ in {text:?}")),
                        }
                    }
                    if name.is_empty() || name.contains('{') {
                        return Err(format!("bad column name {{{name}}} in {text:?}"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Col(name));
                }
                '}' => {
                    return Err(format!(
                        "unmatched }} in {text:?} (write }}}} for a literal)"
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template(pieces))
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Col(c) => Some(c.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// The literal text before the first column (`MSG#` for `MSG#{id}`).
    pub fn literal_prefix(&self) -> String {
        match self.0.first() {
            Some(Piece::Lit(l)) => l.clone(),
            _ => String::new(),
        }
    }

    /// Recover column values from a rendered key (see [`Template::unrender_exact`]); a key
    /// that doesn't fit the template yields nothing.
    pub fn unrender(&self, text: &str) -> Vec<(String, String)> {
        self.unrender_exact(text)
            .map(|v| v.into_iter().map(|(c, t)| (c.to_string(), t)).collect())
            .unwrap_or_default()
    }

    /// The reverse of rendering: the column values that render `text`, or `None` when `text`
    /// does not have this template's shape (so a literal-only template tells a match from a
    /// mismatch). Literals are matched left to right; a column ends where the next literal
    /// next occurs, the last column takes the rest: `MSG#{a}#{b}` reverses `MSG#1#2` into
    /// a=1, b=2. Two columns with no literal between them cannot be split (`None`), and a
    /// column used twice must capture the same text. `verify` uses it to tell which source an
    /// item belongs to and recover its primary key.
    pub fn unrender_exact(&self, text: &str) -> Option<Vec<(&str, String)>> {
        let mut out: Vec<(&str, String)> = Vec::new();
        let mut rest = text;
        let mut pieces = self.0.iter().peekable();
        while let Some(p) = pieces.next() {
            match p {
                Piece::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Piece::Col(c) => {
                    let value = match pieces.peek() {
                        None => std::mem::take(&mut rest),
                        Some(Piece::Lit(next)) => {
                            let at = rest.find(next.as_str())?;
                            let (v, r) = rest.split_at(at);
                            rest = r;
                            v
                        }
                        Some(Piece::Col(_)) => return None,
                    };
                    match out.iter().find(|(n, _)| n == c) {
                        Some((_, seen)) if seen != value => return None,
                        Some(_) => {}
                        None => out.push((c.as_str(), value.to_string())),
                    }
                }
            }
        }
        rest.is_empty().then_some(out)
    }

    /// Every way `text` splits into this template's column values: the reverse of rendering
    /// when a value may contain the literal that follows it (`NOTE#{owner}#{id}` over
    /// `NOTE#c#d#3` splits as `c` / `d#3` and as `c#d` / `3`), or when two columns are adjacent
    /// (every split point). A column used twice must capture the same text. `None` when there
    /// are more than `limit` splits (the caller cannot try them all); an empty list when `text`
    /// does not have this template's shape.
    pub fn unrender_all(&self, text: &str, limit: usize) -> Option<Vec<Vec<(&str, String)>>> {
        let mut out = Vec::new();
        let mut current = Vec::new();
        self.splits(0, text, &mut current, &mut out, limit)
            .then_some(out)
    }

    /// Depth-first over the pieces from `at`; false when over `limit`.
    fn splits<'t>(
        &'t self,
        at: usize,
        rest: &str,
        current: &mut Vec<(&'t str, String)>,
        out: &mut Vec<Vec<(&'t str, String)>>,
        limit: usize,
    ) -> bool {
        let Some(piece) = self.0.get(at) else {
            if rest.is_empty() {
                if out.len() >= limit {
                    return false;
                }
                out.push(current.clone());
            }
            return true;
        };
        let col = match piece {
            Piece::Lit(l) => {
                return match rest.strip_prefix(l.as_str()) {
                    Some(r) => self.splits(at + 1, r, current, out, limit),
                    None => true,
                }
            }
            Piece::Col(c) => c.as_str(),
        };
        // Where this column's value may end: at the end (last piece), before any occurrence
        // of the next literal, or (adjacent columns) at any character boundary.
        let ends: Vec<usize> = match self.0.get(at + 1) {
            None => vec![rest.len()],
            Some(Piece::Lit(next)) => (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i) && rest[i..].starts_with(next.as_str()))
                .collect(),
            Some(Piece::Col(_)) => (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .collect(),
        };
        for end in ends {
            let (value, r) = rest.split_at(end);
            let seen = current.iter().find(|(n, _)| *n == col).map(|(_, v)| v);
            match seen {
                Some(v) if v != value => continue,
                Some(_) => {
                    if !self.splits(at + 1, r, current, out, limit) {
                        return false;
                    }
                }
                None => {
                    current.push((col, value.to_string()));
                    let ok = self.splits(at + 1, r, current, out, limit);
                    current.pop();
                    if !ok {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Pairs of neighbouring columns and the literal between them (`None`: adjacent).
    fn boundaries(&self) -> Vec<(&str, Option<&str>, &str)> {
        let mut out = Vec::new();
        for (i, p) in self.0.iter().enumerate() {
            let Piece::Col(a) = p else { continue };
            match (self.0.get(i + 1), self.0.get(i + 2)) {
                (Some(Piece::Col(b)), _) => out.push((a.as_str(), None, b.as_str())),
                (Some(Piece::Lit(l)), Some(Piece::Col(b))) => {
                    out.push((a.as_str(), Some(l.as_str()), b.as_str()))
                }
                _ => {}
            }
        }
        out
    }

    /// Why two rows could render the same key: for each pair of neighbouring columns that
    /// nothing separates (adjacent placeholders), or whose separator can occur in the values of
    /// both (by their declared types: `int` values hold no `#`, `auto` and `string` values may
    /// hold anything), a sentence naming them. A key is unambiguous when the separator can't
    /// occur in one of its two neighbours. `type_of` gives a column's declared type.
    pub fn inseparable(&self, type_of: impl Fn(&str) -> ColumnType) -> Vec<String> {
        let mut out = Vec::new();
        for (a, lit, b) in self.boundaries() {
            match lit {
                None => out.push(format!(
                    "{{{a}}}{{{b}}}: adjacent placeholders can't be told apart (put a separator between them)"
                )),
                Some(l) if may_hold(type_of(a), l) && may_hold(type_of(b), l) => out.push(format!(
                    "{{{a}}} and {{{b}}} are separated by {l:?}, which values of both may contain, so two rows can render the same key; declare a type that can't hold it (e.g. types.{b} = \"int\") or pick a separator the values never contain"
                )),
                Some(_) => {}
            }
        }
        out
    }

    pub(super) fn is_single_column(&self) -> bool {
        matches!(self.0.as_slice(), [Piece::Col(_)])
    }

    pub(super) fn render(
        &self,
        mut value: impl FnMut(&str) -> Result<String, MapError>,
    ) -> Result<String, MapError> {
        if let [Piece::Col(c)] = self.0.as_slice() {
            return value(c);
        }
        let mut out = String::with_capacity(32);
        for p in &self.0 {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Col(c) => out.push_str(&value(c)?),
            }
        }
        Ok(out)
    }
}

/// Whether a value of type `ty` may contain a character of `literal` (by the characters its
/// rendering uses; `auto`, `string`, `enum`, `set` and `json` may contain anything).
fn may_hold(ty: ColumnType, literal: &str) -> bool {
    let allowed: fn(char) -> bool = match ty {
        ColumnType::Int | ColumnType::Year => |c| c.is_ascii_digit() || c == '-',
        ColumnType::Number | ColumnType::Float => |c| c.is_ascii_digit() || c == '-' || c == '.',
        ColumnType::DateTime(TimeFormat::Iso) => {
            |c| c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | 'T' | 'Z')
        }
        ColumnType::DateTime(_) => |c| c.is_ascii_digit() || c == '-',
        ColumnType::Date => |c| c.is_ascii_digit() || c == '-',
        ColumnType::Time => |c| c.is_ascii_digit() || matches!(c, '-' | ':' | '.'),
        ColumnType::Bool => |c| "truefals".contains(c),
        ColumnType::Binary(BinaryEncoding::Hex) => |c| c.is_ascii_hexdigit(),
        ColumnType::Binary(BinaryEncoding::Base64) => {
            |c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
        }
        _ => return true,
    };
    literal.chars().any(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_strictly() {
        assert!(Template::parse("A#{x").is_err());
        assert!(Template::parse("A#}").is_err());
        assert!(Template::parse("{}").is_err());
        assert_eq!(
            Template::parse("{{x}}#{y}")
                .unwrap()
                .columns()
                .collect::<Vec<_>>(),
            vec!["y"]
        );
    }

    #[test]
    fn templates_reverse_exactly() {
        let t = Template::parse("MSG#{conversation_id}#{id}").unwrap();
        assert_eq!(
            t.unrender_exact("MSG#c1#42"),
            Some(vec![("conversation_id", "c1".into()), ("id", "42".into())])
        );
        assert_eq!(t.unrender_exact("USER#42"), None);
        assert_eq!(
            t.unrender_exact("MSG##42"),
            Some(vec![
                ("conversation_id", String::new()),
                ("id", "42".into())
            ])
        );
        let twice = Template::parse("{id}#{id}").unwrap();
        assert_eq!(twice.unrender_exact("1#1"), Some(vec![("id", "1".into())]));
        assert_eq!(twice.unrender_exact("1#2"), None);
        let literal = Template::parse("META").unwrap();
        assert_eq!(literal.unrender_exact("META"), Some(vec![]));
        assert_eq!(literal.unrender_exact("MSG#1"), None);
        assert!(t.unrender("USER#42").is_empty());
        let single = Template::parse("{id}").unwrap();
        assert_eq!(single.unrender_exact("7"), Some(vec![("id", "7".into())]));
        let adjacent = Template::parse("{a}{b}").unwrap();
        assert_eq!(adjacent.unrender_exact("12"), None);
        let suffix = Template::parse("U{id}!").unwrap();
        assert_eq!(suffix.unrender_exact("U9!"), Some(vec![("id", "9".into())]));
        assert_eq!(suffix.unrender_exact("U9"), None);
    }

    #[test]
    fn ambiguous_splits_are_all_tried() {
        let t = Template::parse("NOTE#{owner}#{id}").unwrap();
        let all = t.unrender_all("NOTE#c#d#e#3", 100).unwrap();
        let ids: Vec<(String, String)> = all
            .iter()
            .map(|v| (v[0].1.clone(), v[1].1.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("c".to_string(), "d#e#3".to_string()),
                ("c#d".into(), "e#3".into()),
                ("c#d#e".into(), "3".into())
            ]
        );
        // A value made of the separator only.
        let all = t.unrender_all("NOTE###4", 100).unwrap();
        assert!(all.contains(&vec![("owner", "#".to_string()), ("id", "4".to_string())]));
        assert_eq!(t.unrender_all("USER#1", 100).unwrap(), Vec::<Vec<_>>::new());
        assert_eq!(t.unrender_all("NOTE#a#b#c#d", 2), None, "over the limit");
        let adjacent = Template::parse("{a}{b}").unwrap();
        assert_eq!(adjacent.unrender_all("12", 10).unwrap().len(), 3);
        let twice = Template::parse("{id}#{x}#{id}").unwrap();
        assert_eq!(
            twice.unrender_all("1#2#3#1", 10).unwrap(),
            vec![vec![("id", "1".to_string()), ("x", "2#3".to_string())]]
        );
        let multi = Template::parse("é{a}ü{b}").unwrap();
        assert_eq!(multi.unrender_all("éxüyüz", 10).unwrap().len(), 2);
        assert_eq!(t.boundaries(), vec![("owner", Some("#"), "id")]);
    }

    #[test]
    fn inseparable_placeholders_are_named() {
        let t = Template::parse("NOTE#{owner}#{id}").unwrap();
        let auto = |_: &str| ColumnType::Auto;
        let w = t.inseparable(auto);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("{owner} and {id}"), "{w:?}");
        // An int id can't hold `#`: the key splits at its last `#`.
        let typed = |c: &str| {
            if c == "id" {
                ColumnType::Int
            } else {
                ColumnType::Auto
            }
        };
        assert!(t.inseparable(typed).is_empty());
        let w = Template::parse("{a}{b}").unwrap().inseparable(auto);
        assert!(w[0].contains("adjacent"), "{w:?}");
        assert!(Template::parse("MSG#{id}")
            .unwrap()
            .inseparable(auto)
            .is_empty());
        let dt = |_: &str| ColumnType::DateTime(TimeFormat::Iso);
        assert!(!Template::parse("{a}:{b}")
            .unwrap()
            .inseparable(dt)
            .is_empty());
        assert!(Template::parse("{a}#{b}")
            .unwrap()
            .inseparable(dt)
            .is_empty());
    }
}
