//! What applying a declared object did: [`Applied`] and [`Change`], the answer of every
//! `apply`-style call (create it, or change it to match, or leave it as it is).

/// What applying a declared object did to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// It did not exist: created.
    Created,
    /// It existed and differed: changed to match the declaration.
    Updated,
    /// It existed as declared: nothing was written.
    Unchanged,
}

impl Change {
    /// Whether anything was written.
    pub fn changed(self) -> bool {
        self != Change::Unchanged
    }
}

impl std::fmt::Display for Change {
    /// `created`, `updated` or `unchanged`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        })
    }
}

/// An object as the server has it after an apply, and what the apply did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Applied<T> {
    /// The object as the server has it now.
    pub object: T,
    /// What the apply did.
    pub change: Change,
}

impl<T> Applied<T> {
    /// The object, and what was done.
    pub(crate) fn new(object: T, change: Change) -> Applied<T> {
        Applied { object, change }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_prints_as_the_word_a_report_uses() {
        let words: Vec<String> = [Change::Created, Change::Updated, Change::Unchanged]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(words, ["created", "updated", "unchanged"]);
        assert!(Change::Created.changed() && Change::Updated.changed());
        assert!(!Change::Unchanged.changed());
    }
}
