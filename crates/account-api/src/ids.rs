//! Ids that Astakos clients send as strings or as numbers.

use serde::{Deserialize, Serialize};

/// An id given as a JSON string or integer: kamaki sends an application's `app_id` as a
/// string, astakosclient's own callers as an integer; a project id may come either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdText {
    Text(String),
    Number(i64),
}

impl IdText {
    /// The id as text, the form nefos keeps every id in.
    pub fn to_text(&self) -> String {
        match self {
            IdText::Text(text) => text.clone(),
            IdText::Number(number) => number.to_string(),
        }
    }
}

impl From<&str> for IdText {
    fn from(text: &str) -> Self {
        IdText::Text(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_and_numbers() {
        let text: IdText = serde_json::from_str("\"7\"").unwrap_or(IdText::Number(0));
        let number: IdText = serde_json::from_str("7").unwrap_or(IdText::Number(0));
        assert_eq!(text.to_text(), "7");
        assert_eq!(number.to_text(), "7");
        assert!(serde_json::from_str::<IdText>("[7]").is_err());
    }
}
