//! Route templates (`/pets/{id}`), matched against request paths.

use std::sync::Arc;

use percent_encoding::percent_decode_str;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`, possibly with a literal prefix and suffix in the same segment: `{id}.json`.
    Param {
        prefix: String,
        name: String,
        suffix: String,
    },
}

/// A parsed route template.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    text: Arc<str>,
    segments: Vec<Segment>,
}

impl Template {
    pub(crate) fn parse(text: Arc<str>) -> Self {
        let segments = text
            .split('/')
            .skip(1)
            .map(|segment| match (segment.find('{'), segment.rfind('}')) {
                (Some(open), Some(close)) if open < close => Segment::Param {
                    prefix: segment[..open].to_owned(),
                    name: segment[open + 1..close].to_owned(),
                    suffix: segment[close + 1..].to_owned(),
                },
                _ => Segment::Literal(segment.to_owned()),
            })
            .collect();
        Self { text, segments }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param { name, .. } => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    /// Whether `path` matches this template; allocates nothing.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.walk(path, |_, _| {})
    }

    /// The path parameters of `path` (percent-decoded), if it matches this template.
    pub(crate) fn captures<'t>(&'t self, path: &str) -> Option<Vec<(&'t str, String)>> {
        let mut captures = Vec::new();
        self.walk(path, |name, value| {
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            captures.push((name, value));
        })
        .then_some(captures)
    }

    fn walk<'t>(&'t self, path: &str, mut capture: impl FnMut(&'t str, &str)) -> bool {
        let mut parts = path.split('/').skip(1);
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Literal(literal) => {
                    if literal != part {
                        return false;
                    }
                }
                Segment::Param {
                    prefix,
                    name,
                    suffix,
                } => {
                    let value = part
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.strip_suffix(suffix.as_str()));
                    match value {
                        Some(value) if !value.is_empty() => capture(name, value),
                        _ => return false,
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// Finds the template a raw path matches when the router did not say (no `MatchedPath`).
pub(crate) struct PathMatcher {
    /// Most literal segments first, so `/pets/mine` wins over `/pets/{id}`.
    templates: Vec<Template>,
}

impl PathMatcher {
    pub(crate) fn new(templates: impl Iterator<Item = Arc<str>>) -> Self {
        let mut templates: Vec<Template> = templates.map(Template::parse).collect();
        templates.sort_by(|a, b| {
            b.literals()
                .cmp(&a.literals())
                .then_with(|| a.text.cmp(&b.text))
        });
        Self { templates }
    }

    pub(crate) fn find(&self, path: &str) -> Option<&str> {
        self.templates
            .iter()
            .find(|template| template.matches(path))
            .map(Template::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_decode_and_respect_literals() {
        let template = Template::parse("/pets/{id}/photos/{name}.png".into());
        assert_eq!(
            template.captures("/pets/a%20b/photos/cat.png"),
            Some(vec![("id", "a b".to_owned()), ("name", "cat".to_owned())])
        );
        assert_eq!(template.captures("/pets/1/photos/cat.jpg"), None);
        assert_eq!(template.captures("/pets/1/photos"), None);
        assert_eq!(template.captures("/pets//photos/x.png"), None);
        assert_eq!(template.captures("/pets/1/photos/x.png/more"), None);
    }

    #[test]
    fn literal_templates_win() {
        let matcher =
            PathMatcher::new(["/pets/{id}", "/pets/mine", "/"].into_iter().map(Arc::from));
        assert_eq!(matcher.find("/pets/mine"), Some("/pets/mine"));
        assert_eq!(matcher.find("/pets/7"), Some("/pets/{id}"));
        assert_eq!(matcher.find("/"), Some("/"));
        assert_eq!(matcher.find("/owners"), None);
    }
}
