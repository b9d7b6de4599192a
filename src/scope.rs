//! Scopes (RFC 6749 §3.3): a space-separated list, or, in GitHub's dialect,
//! also comma-separated.

use crate::dialect::Dialect;

/// The scopes of a `scope` parameter, without duplicates, in order.
///
/// RFC 6749 §3.3 separates scopes with spaces; GitHub also accepts commas
/// (`repo,user`).
pub(crate) fn parse(value: Option<&str>, dialect: Dialect) -> Vec<String> {
    let separators: &[char] = match dialect {
        Dialect::GitHub => &[' ', ','],
        Dialect::Rfc6749 => &[' '],
    };
    let mut scopes: Vec<String> = Vec::new();
    for scope in value
        .unwrap_or("")
        .split(separators)
        .filter(|s| !s.is_empty())
    {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// Whether each scope is a legal scope token: `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn is_valid(scopes: &[String]) -> bool {
    scopes.iter().all(|scope| {
        scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    })
}

/// Whether every scope of `requested` is in `granted`.
pub(crate) fn within(requested: &[String], granted: &[String]) -> bool {
    requested.iter().all(|scope| granted.contains(scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_by_dialect() {
        assert_eq!(
            parse(Some("read  write read"), Dialect::Rfc6749),
            ["read", "write"]
        );
        assert_eq!(
            parse(Some("repo,user gist"), Dialect::GitHub),
            ["repo", "user", "gist"]
        );
        assert_eq!(parse(Some("repo,user"), Dialect::Rfc6749), ["repo,user"]);
        assert!(parse(None, Dialect::GitHub).is_empty());
    }

    #[test]
    fn scope_tokens() {
        assert!(is_valid(&["repo:status".into(), "read".into()]));
        assert!(!is_valid(&["a\"b".into()]));
        assert!(!is_valid(&["a\\b".into()]));
        assert!(within(&["a".into()], &["a".into(), "b".into()]));
        assert!(!within(&["c".into()], &["a".into()]));
    }
}
