//! Permission patterns `domain:action:target`, compiled once.
//!
//! The seed built a regex from each pattern without escaping it, so `.` matched any character and
//! a pattern could smuggle regex syntax. Here the only special character is `*`, and a target that
//! is exactly `@name` names a group. Everything else is literal.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use memchr::memmem;

/// A compiled `domain:action:target` permission pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    domain: Segment,
    action: Segment,
    target: TargetPattern,
    text: Arc<str>,
}

/// A domain or action: one exact value, or `*` for any one value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `*`: any one value.
    Any,
    /// This exact value.
    Exact(Box<str>),
}

/// The target part of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPattern {
    /// Matches when the target is equal, byte for byte.
    Exact(Box<str>),
    /// Contains at least one `*`, each matching any run of characters.
    Glob(Glob),
    /// `@name`: membership in a group defined in configuration.
    Group(Box<str>),
}

/// A target glob in which `*` matches any run of characters (`/` and `:` included).
#[derive(Clone, Debug)]
pub struct Glob {
    prefix: Box<str>,
    middle: Box<[Box<str>]>,
    suffix: Box<str>,
    min_len: usize,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.middle == other.middle && self.suffix == other.suffix
    }
}
impl Eq for Glob {}

/// Why a pattern did not compile; `span` is a byte range inside the pattern text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission pattern `{text}`: {kind}")]
pub struct PatternError {
    /// What is wrong.
    pub kind: PatternErrorKind,
    /// Where, as a byte range inside the pattern text.
    pub span: Range<usize>,
    /// The pattern text as written.
    pub text: String,
}

impl PatternError {
    /// A hint to show under the error, when one helps.
    pub fn help(&self) -> Option<String> {
        match self.kind {
            PatternErrorKind::MissingParts => {
                let mut parts = self.text.splitn(3, ':');
                let domain = parts.next().filter(|d| !d.is_empty()).unwrap_or("tools");
                let action = parts
                    .next()
                    .filter(|a| !a.is_empty())
                    .unwrap_or(default_action(domain));
                Some(format!("did you mean `{domain}:{action}:*`?"))
            }
            PatternErrorKind::PartialWildcard { .. } => Some(
                "in domain and action `*` stands alone; only the target may mix `*` with text"
                    .into(),
            ),
            PatternErrorKind::BadGroupName => {
                Some("a group target is `@` followed by letters, digits, `_` or `-`".into())
            }
            _ => None,
        }
    }
}

fn default_action(domain: &str) -> &'static str {
    match domain {
        "tools" => "execute",
        "system" => "call",
        _ => "read",
    }
}

/// The kinds of [`PatternError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternErrorKind {
    /// Fewer than three colon-separated parts.
    #[error("expected `domain:action:target`")]
    MissingParts,
    /// The domain part is empty.
    #[error("the domain is empty")]
    EmptyDomain,
    /// The action part is empty.
    #[error("the action is empty")]
    EmptyAction,
    /// The target part is empty.
    #[error("the target is empty")]
    EmptyTarget,
    /// `*` mixed with other characters in the domain or action.
    #[error("`*` must be the whole {part}")]
    PartialWildcard {
        /// `domain` or `action`.
        part: &'static str,
    },
    /// A character not allowed in a domain or action.
    #[error("{part} may hold only letters, digits, `_`, `-`, `.` and `/`")]
    BadName {
        /// `domain` or `action`.
        part: &'static str,
    },
    /// A control character or whitespace where none may be.
    #[error("control characters and whitespace are not allowed")]
    ControlCharacter,
    /// A target starting with `@` that is not a valid group name.
    #[error("invalid group name")]
    BadGroupName,
    /// A group target inside an `@`-less pattern context, e.g. a group name in a group definition.
    #[error("a group cannot be used here")]
    GroupNotAllowed,
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
}

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;

impl Pattern {
    /// Compiles a pattern such as `tools:execute:@safe` or `resources:read:file:///srv/*`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let err = |kind, span: Range<usize>| PatternError {
            kind,
            span,
            text: text.to_owned(),
        };
        if text.len() > MAX_PATTERN_LEN {
            return Err(err(PatternErrorKind::TooLong, 0..text.len()));
        }
        let Some(first) = text.find(':') else {
            return Err(err(PatternErrorKind::MissingParts, 0..text.len()));
        };
        let Some(second_rel) = text[first + 1..].find(':') else {
            return Err(err(PatternErrorKind::MissingParts, 0..text.len()));
        };
        let second = first + 1 + second_rel;
        let domain = parse_segment(&text[..first], "domain", 0).map_err(|(k, s)| err(k, s))?;
        let action = parse_segment(&text[first + 1..second], "action", first + 1)
            .map_err(|(k, s)| err(k, s))?;
        let target_text = &text[second + 1..];
        let target = TargetPattern::parse(target_text, true)
            .map_err(|(k, s)| err(k, s.start + second + 1..s.end + second + 1))?;
        Ok(Pattern {
            domain,
            action,
            target,
            text: text.into(),
        })
    }

    /// Builds a pattern from parts already compiled (ABAC policy resources and actions).
    pub(crate) fn from_parts(domain: Segment, action: Segment, target: TargetPattern) -> Self {
        let target_text = match &target {
            TargetPattern::Exact(t) => t.to_string(),
            TargetPattern::Glob(g) => g.text(),
            TargetPattern::Group(g) => format!("@{g}"),
        };
        let text = format!("{}:{}:{target_text}", domain.key(), action.key());
        Pattern {
            domain,
            action,
            target,
            text: text.into(),
        }
    }

    /// The domain part.
    pub fn domain(&self) -> &Segment {
        &self.domain
    }

    /// The action part.
    pub fn action(&self) -> &Segment {
        &self.action
    }

    /// The target part.
    pub fn target(&self) -> &TargetPattern {
        &self.target
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern as written, shared.
    pub fn text_arc(&self) -> Arc<str> {
        self.text.clone()
    }

    /// Whether the pattern matches, treating a group target as matching nothing.
    ///
    /// Group membership needs configuration; [`crate::Authorizer`] resolves groups.
    pub fn matches_ungrouped(&self, domain: &str, action: &str, target: &str) -> bool {
        self.domain.matches(domain)
            && self.action.matches(action)
            && match &self.target {
                TargetPattern::Exact(t) => **t == *target,
                TargetPattern::Glob(g) => g.matches(target),
                TargetPattern::Group(_) => false,
            }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Segment {
    /// Whether this segment accepts `value`.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Exact(v) => **v == *value,
        }
    }

    /// The key used to index it: the value, or `*`.
    pub fn key(&self) -> &str {
        match self {
            Segment::Any => "*",
            Segment::Exact(v) => v,
        }
    }
}

type RawError = (PatternErrorKind, Range<usize>);

/// Parses a domain or action (also used for ABAC resource domains).
pub(crate) fn parse_segment(s: &str, part: &'static str, at: usize) -> Result<Segment, RawError> {
    if s.is_empty() {
        let kind = if part == "domain" {
            PatternErrorKind::EmptyDomain
        } else {
            PatternErrorKind::EmptyAction
        };
        return Err((kind, at..at));
    }
    if s == "*" {
        return Ok(Segment::Any);
    }
    for (i, c) in s.char_indices() {
        let span = at + i..at + i + c.len_utf8();
        if c == '*' {
            return Err((PatternErrorKind::PartialWildcard { part }, span));
        }
        if c.is_control() || c.is_whitespace() {
            return Err((PatternErrorKind::ControlCharacter, span));
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')) {
            return Err((PatternErrorKind::BadName { part }, span));
        }
    }
    Ok(Segment::Exact(s.into()))
}

impl TargetPattern {
    /// Parses a target; spans are relative to `s`.
    pub(crate) fn parse(s: &str, groups_allowed: bool) -> Result<Self, RawError> {
        if s.is_empty() {
            return Err((PatternErrorKind::EmptyTarget, 0..0));
        }
        if let Some((i, c)) = s.char_indices().find(|(_, c)| c.is_control()) {
            return Err((PatternErrorKind::ControlCharacter, i..i + c.len_utf8()));
        }
        if let Some(name) = s.strip_prefix('@') {
            if !groups_allowed {
                return Err((PatternErrorKind::GroupNotAllowed, 0..s.len()));
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err((PatternErrorKind::BadGroupName, 0..s.len()));
            }
            return Ok(TargetPattern::Group(name.into()));
        }
        if s.contains('*') {
            Ok(TargetPattern::Glob(Glob::new(s)))
        } else {
            Ok(TargetPattern::Exact(s.into()))
        }
    }

    /// Parses a target that may not name a group (group definitions, ABAC policy resources).
    pub fn parse_plain(s: &str) -> Result<Self, PatternError> {
        TargetPattern::parse(s, false).map_err(|(kind, span)| PatternError {
            kind,
            span,
            text: s.to_owned(),
        })
    }

    /// Matches a target, treating a group as matching nothing.
    pub fn matches_ungrouped(&self, target: &str) -> bool {
        match self {
            TargetPattern::Exact(t) => **t == *target,
            TargetPattern::Glob(g) => g.matches(target),
            TargetPattern::Group(_) => false,
        }
    }
}

impl Glob {
    /// Builds a glob from text holding at least one `*`.
    fn new(s: &str) -> Self {
        let mut parts: Vec<&str> = s.split('*').collect();
        // INVARIANT: split always yields at least one item, and `s` holds a `*`, so at least two.
        let suffix = parts.pop().unwrap_or_default();
        let prefix = if parts.is_empty() {
            ""
        } else {
            parts.remove(0)
        };
        let middle: Box<[Box<str>]> = parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(Into::into)
            .collect();
        let min_len = prefix.len() + suffix.len() + middle.iter().map(|m| m.len()).sum::<usize>();
        Glob {
            prefix: prefix.into(),
            middle,
            suffix: suffix.into(),
            min_len,
        }
    }

    /// The glob as written.
    pub fn text(&self) -> String {
        let mut out = String::from(&*self.prefix);
        out.push('*');
        for m in self.middle.iter() {
            out.push_str(m);
            out.push('*');
        }
        out.push_str(&self.suffix);
        out
    }

    /// The literal text before the first `*`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether everything after the prefix is one `*` (a pure prefix pattern).
    pub fn is_prefix_only(&self) -> bool {
        self.middle.is_empty() && self.suffix.is_empty()
    }

    /// Whether the glob matches all of `target`.
    pub fn matches(&self, target: &str) -> bool {
        target.len() >= self.min_len
            && target.starts_with(&*self.prefix)
            && self.matches_after_prefix(&target[self.prefix.len()..])
    }

    /// Matches what follows the prefix; the caller has checked the prefix.
    pub(crate) fn matches_after_prefix(&self, rest: &str) -> bool {
        if rest.len() + self.prefix.len() < self.min_len || !rest.ends_with(&*self.suffix) {
            return false;
        }
        let mut hay = &rest.as_bytes()[..rest.len() - self.suffix.len()];
        // Leftmost placement of each middle piece is optimal when `*` is the only wildcard.
        for piece in self.middle.iter() {
            match memmem::find(hay, piece.as_bytes()) {
                Some(at) => hay = &hay[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_first_two_colons_only() {
        let p = Pattern::parse("resources:read:file:///a:b/*").unwrap();
        assert_eq!(p.domain(), &Segment::Exact("resources".into()));
        assert_eq!(p.action(), &Segment::Exact("read".into()));
        assert!(p.matches_ungrouped("resources", "read", "file:///a:b/c:d"));
        assert!(!p.matches_ungrouped("resources", "read", "file:///a:c/x"));
    }

    #[test]
    fn regex_metacharacters_stay_literal() {
        let p = Pattern::parse("resources:read:file:///a.txt").unwrap();
        assert!(p.matches_ungrouped("resources", "read", "file:///a.txt"));
        assert!(!p.matches_ungrouped("resources", "read", "file:///aXtxt"));
        for meta in ["a+b", "a?b", "(a|b)", "[ab]", "a{2}", "^a$", "a\\d", "a.*"] {
            let p = Pattern::parse(&format!("tools:execute:{meta}")).unwrap();
            if !meta.contains('*') {
                assert!(p.matches_ungrouped("tools", "execute", meta), "{meta}");
                assert!(!p.matches_ungrouped("tools", "execute", "ab"), "{meta}");
                assert!(!p.matches_ungrouped("tools", "execute", "aab"), "{meta}");
            }
        }
        let p = Pattern::parse("tools:execute:a.*").unwrap();
        assert!(p.matches_ungrouped("tools", "execute", "a.anything"));
        assert!(!p.matches_ungrouped("tools", "execute", "abc"));
    }

    #[test]
    fn star_crosses_slashes_and_colons() {
        let p = Pattern::parse("resources:read:file:///srv/*/log").unwrap();
        assert!(p.matches_ungrouped("resources", "read", "file:///srv/a/b:c/log"));
        assert!(!p.matches_ungrouped("resources", "read", "file:///srv/a/logs"));
        let p = Pattern::parse("tools:*:*").unwrap();
        assert!(p.matches_ungrouped("tools", "execute", "x"));
        assert!(!p.matches_ungrouped("prompts", "read", "x"));
    }

    #[test]
    fn glob_pieces_do_not_overlap() {
        let p = Pattern::parse("tools:execute:ab*ba").unwrap();
        assert!(!p.matches_ungrouped("tools", "execute", "aba"));
        assert!(p.matches_ungrouped("tools", "execute", "abba"));
        let p = Pattern::parse("tools:execute:*aa*aa*").unwrap();
        assert!(!p.matches_ungrouped("tools", "execute", "aaa"));
        assert!(p.matches_ungrouped("tools", "execute", "aaaa"));
    }

    #[test]
    fn errors_are_precise() {
        let e = Pattern::parse("tools:exec").unwrap_err();
        assert_eq!(e.kind, PatternErrorKind::MissingParts);
        assert_eq!(e.help().as_deref(), Some("did you mean `tools:exec:*`?"));
        let e = Pattern::parse("tools::x").unwrap_err();
        assert_eq!((e.kind, e.span), (PatternErrorKind::EmptyAction, 6..6));
        let e = Pattern::parse("too*s:read:x").unwrap_err();
        assert_eq!(
            (e.kind, e.span),
            (PatternErrorKind::PartialWildcard { part: "domain" }, 3..4)
        );
        let e = Pattern::parse("tools:read:").unwrap_err();
        assert_eq!(e.kind, PatternErrorKind::EmptyTarget);
        let e = Pattern::parse("tools:read:@").unwrap_err();
        assert_eq!((e.kind, e.span), (PatternErrorKind::BadGroupName, 11..12));
        let e = Pattern::parse("tools:read:a\nb").unwrap_err();
        assert_eq!(
            (e.kind, e.span),
            (PatternErrorKind::ControlCharacter, 12..13)
        );
        let e = Pattern::parse("tools:re ad:x").unwrap_err();
        assert_eq!(e.kind, PatternErrorKind::ControlCharacter);
        assert!(e.to_string().contains("`tools:re ad:x`"), "{e}");
    }

    #[test]
    fn group_targets() {
        let p = Pattern::parse("tools:execute:@safe").unwrap();
        assert_eq!(p.target(), &TargetPattern::Group("safe".into()));
        // A group never matches without configuration.
        assert!(!p.matches_ungrouped("tools", "execute", "@safe"));
        // `@` elsewhere is literal.
        let p = Pattern::parse("resources:read:mailto:a@b").unwrap();
        assert!(p.matches_ungrouped("resources", "read", "mailto:a@b"));
        assert!(TargetPattern::parse_plain("@safe").is_err());
    }

    /// A deliberately simple matcher: `*` matches any run, everything else one equal character.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn target_matching_agrees_with_reference(
            target in "[a.:/*x]{1,8}",
            text in "[a.:/x]{0,10}",
        ) {
            let p = Pattern::parse(&format!("d:a:{target}")).unwrap();
            proptest::prop_assert_eq!(
                p.matches_ungrouped("d", "a", &text),
                reference(target.as_bytes(), text.as_bytes()),
                "pattern {} text {}", target, text
            );
        }

        #[test]
        fn domain_and_action_match_one_whole_value(
            d in "[a-c*]{1,2}", a in "[a-c*]{1,2}", qd in "[a-c]{1,2}", qa in "[a-c]{1,2}",
        ) {
            if let Ok(p) = Pattern::parse(&format!("{d}:{a}:*")) {
                let want = (d == "*" || d == qd) && (a == "*" || a == qa);
                proptest::prop_assert_eq!(p.matches_ungrouped(&qd, &qa, "t"), want);
            } else {
                proptest::prop_assert!(d.contains('*') || a.contains('*'));
            }
        }
    }
}
