//! Named groups that a pattern target `@name` refers to (DESIGN.md section 4).
//!
//! Tool groups are defined by name patterns and/or the upstream's tool annotations; resource and
//! prompt groups by patterns. Only annotations the upstream stated explicitly count: a tool without
//! annotations is never "read-only" by default.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::context::ToolCatalog;
use crate::pattern::{PatternError, TargetPattern};

/// A set of target patterns (exact and glob; no groups).
#[derive(Clone, Debug, Default)]
pub struct TargetSet {
    patterns: Vec<TargetPattern>,
}

impl TargetSet {
    /// Compiles target patterns; a group reference inside a group is an error.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        Ok(TargetSet {
            patterns: patterns
                .into_iter()
                .map(TargetPattern::parse_plain)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether any pattern matches `target`.
    pub fn contains(&self, target: &str) -> bool {
        self.patterns.iter().any(|p| p.matches_ungrouped(target))
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// How the criteria of a tool group combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Combine {
    /// A tool is a member when any stated criterion holds (default).
    #[default]
    Any,
    /// A tool is a member only when every stated criterion holds.
    All,
}

/// A tool group.
#[derive(Clone, Debug, Default)]
pub struct ToolGroup {
    /// Tool name patterns.
    pub names: TargetSet,
    /// Annotations that must be present with exactly these values.
    pub annotations: Vec<(String, bool)>,
    /// Annotations that must not be present with these values.
    pub not_annotations: Vec<(String, bool)>,
    /// How `names` and the annotation criteria combine.
    pub combine: Combine,
}

impl ToolGroup {
    /// The default `safe` group: `readOnlyHint: true` and not `destructiveHint: true`.
    pub fn default_safe() -> Self {
        ToolGroup {
            names: TargetSet::default(),
            annotations: vec![("readOnlyHint".into(), true)],
            not_annotations: vec![("destructiveHint".into(), true)],
            combine: Combine::Any,
        }
    }

    fn uses_annotations(&self) -> bool {
        !self.annotations.is_empty() || !self.not_annotations.is_empty()
    }

    /// Whether `tool` is a member, and whether missing annotations kept it out.
    fn check(&self, tool: &str, catalog: Option<&ToolCatalog>) -> Membership {
        let by_name = (!self.names.is_empty()).then(|| self.names.contains(tool));
        let (by_annotations, missing) = if self.uses_annotations() {
            match catalog.and_then(|c| c.get(tool)) {
                Some(ann) => (Some(self.annotations_hold(ann)), false),
                None => (Some(false), true),
            }
        } else {
            (None, false)
        };
        let member = match self.combine {
            Combine::Any => by_name == Some(true) || by_annotations == Some(true),
            Combine::All => {
                by_name != Some(false)
                    && by_annotations != Some(false)
                    && (by_name.is_some() || by_annotations.is_some())
            }
        };
        Membership {
            member,
            annotations_missing: missing && !member,
        }
    }

    fn annotations_hold(&self, ann: &Map<String, Value>) -> bool {
        self.annotations
            .iter()
            .all(|(k, v)| ann.get(k).and_then(Value::as_bool) == Some(*v))
            && !self
                .not_annotations
                .iter()
                .any(|(k, v)| ann.get(k).and_then(Value::as_bool) == Some(*v))
    }
}

struct Membership {
    member: bool,
    annotations_missing: bool,
}

/// All groups, by domain and name.
#[derive(Clone, Debug)]
pub struct Groups {
    tools: HashMap<String, ToolGroup>,
    resources: HashMap<String, TargetSet>,
    prompts: HashMap<String, TargetSet>,
}

impl Default for Groups {
    /// The defaults: tool group `safe`, empty resource and prompt groups `public`.
    fn default() -> Self {
        Groups {
            tools: HashMap::from([("safe".to_owned(), ToolGroup::default_safe())]),
            resources: HashMap::from([("public".to_owned(), TargetSet::default())]),
            prompts: HashMap::from([("public".to_owned(), TargetSet::default())]),
        }
    }
}

/// A note a group lookup leaves for the explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupNote {
    /// The group.
    pub group: String,
    /// The tool that could not be placed.
    pub tool: String,
}

impl Groups {
    /// No groups at all.
    pub fn empty() -> Self {
        Groups {
            tools: HashMap::new(),
            resources: HashMap::new(),
            prompts: HashMap::new(),
        }
    }

    /// Defines or replaces a tool group.
    pub fn set_tool_group(&mut self, name: impl Into<String>, group: ToolGroup) {
        self.tools.insert(name.into(), group);
    }

    /// Defines or replaces a resource group.
    pub fn set_resource_group(&mut self, name: impl Into<String>, set: TargetSet) {
        self.resources.insert(name.into(), set);
    }

    /// Defines or replaces a prompt group.
    pub fn set_prompt_group(&mut self, name: impl Into<String>, set: TargetSet) {
        self.prompts.insert(name.into(), set);
    }

    /// Whether some tool group is defined by the upstream's annotations.
    pub fn use_annotations(&self) -> bool {
        self.tools.values().any(ToolGroup::uses_annotations)
    }

    /// Whether a group of that name exists in `domain` (`*`: in any domain).
    pub fn defines(&self, domain: &str, name: &str) -> bool {
        match domain {
            "tools" => self.tools.contains_key(name),
            "resources" => self.resources.contains_key(name),
            "prompts" => self.prompts.contains_key(name),
            "*" => {
                self.tools.contains_key(name)
                    || self.resources.contains_key(name)
                    || self.prompts.contains_key(name)
            }
            _ => false,
        }
    }

    /// Whether `target` of `domain` is in group `name`; notes when annotations were missing.
    pub fn contains(
        &self,
        domain: &str,
        name: &str,
        target: &str,
        catalog: Option<&ToolCatalog>,
        notes: Option<&mut Vec<GroupNote>>,
    ) -> bool {
        match domain {
            "tools" => match self.tools.get(name) {
                Some(group) => {
                    let m = group.check(target, catalog);
                    if m.annotations_missing
                        && let Some(notes) = notes
                    {
                        {
                            let note = GroupNote {
                                group: name.to_owned(),
                                tool: target.to_owned(),
                            };
                            if !notes.contains(&note) {
                                notes.push(note);
                            }
                        }
                    }
                    m.member
                }
                None => false,
            },
            "resources" => self.resources.get(name).is_some_and(|s| s.contains(target)),
            "prompts" => self.prompts.get(name).is_some_and(|s| s.contains(target)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> ToolCatalog {
        ToolCatalog::from_list_result(&json!({"tools": [
            {"name": "read", "annotations": {"readOnlyHint": true}},
            {"name": "both", "annotations": {"readOnlyHint": true, "destructiveHint": true}},
            {"name": "rm", "annotations": {"destructiveHint": true}},
            {"name": "bare"},
        ]}))
    }

    #[test]
    fn default_safe_needs_explicit_read_only_and_no_destructive() {
        let g = Groups::default();
        let c = catalog();
        assert!(g.contains("tools", "safe", "read", Some(&c), None));
        assert!(!g.contains("tools", "safe", "both", Some(&c), None));
        assert!(!g.contains("tools", "safe", "rm", Some(&c), None));
        assert!(!g.contains("tools", "safe", "bare", Some(&c), None));
        let mut notes = Vec::new();
        assert!(!g.contains("tools", "safe", "read", None, Some(&mut notes)));
        assert_eq!(
            notes,
            vec![GroupNote {
                group: "safe".into(),
                tool: "read".into()
            }]
        );
        assert!(!g.contains("resources", "public", "x", None, None));
    }

    #[test]
    fn any_and_all() {
        let mut g = Groups::empty();
        let names = TargetSet::parse(["db_*"]).unwrap();
        g.set_tool_group(
            "any",
            ToolGroup {
                names: names.clone(),
                combine: Combine::Any,
                ..ToolGroup::default_safe()
            },
        );
        g.set_tool_group(
            "all",
            ToolGroup {
                names,
                combine: Combine::All,
                ..ToolGroup::default_safe()
            },
        );
        let mut c = catalog();
        c.insert(
            "db_read",
            serde_json::from_value(json!({"readOnlyHint": true})).unwrap(),
        );
        c.insert(
            "db_drop",
            serde_json::from_value(json!({"destructiveHint": true})).unwrap(),
        );
        assert!(g.contains("tools", "any", "db_drop", Some(&c), None));
        assert!(g.contains("tools", "any", "read", Some(&c), None));
        assert!(g.contains("tools", "all", "db_read", Some(&c), None));
        assert!(!g.contains("tools", "all", "db_drop", Some(&c), None));
        assert!(!g.contains("tools", "all", "read", Some(&c), None));
    }
}
