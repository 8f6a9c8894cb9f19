//! `{column}` templates: parsed once, rendered for every key, and reversed (a rendered key
//! back to the column values) for `verify`'s extras and the data-access layer's reads.

use super::MapError;

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

    pub(super) fn is_single_column(&self) -> bool {
        matches!(self.0.as_slice(), [Piece::Col(_)])
    }

    /// Render into `out`; `value` writes a column's text (no string per piece).
    pub(super) fn render_into(
        &self,
        out: &mut String,
        mut value: impl FnMut(&str, &mut String) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        for p in &self.0 {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Col(c) => value(c, out)?,
            }
        }
        Ok(())
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
}
