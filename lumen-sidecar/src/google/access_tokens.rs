//! Where a command's Google access token comes from, and how it is renewed.
//!
//! Google's access tokens live an hour (`expires_in` 3,600 s), so a command
//! that runs longer (`gate watch`, `alerts watch`, a fleet check against
//! Managed Prometheus) must not hold one token for its lifetime. Each call
//! asks [`AccessTokens::token`], which renews before expiry; a call refused
//! with 401 asks [`AccessTokens::renew`] once and is tried again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::metadata::{GcpError, MetadataClient, TokenSource};

/// The origin of the tokens.
#[derive(Debug)]
enum Origin {
    /// Read again at every call: whoever writes the file keeps it fresh
    /// (`gcloud auth print-access-token > FILE` on a timer).
    File(PathBuf),
    /// One token given in the environment: it cannot be renewed.
    Fixed(String),
    /// The metadata server: renewed before it expires.
    Metadata(Box<TokenSource>),
}

/// A source of bearer tokens for Google's APIs.
#[derive(Debug)]
pub struct AccessTokens {
    origin: Origin,
}

impl AccessTokens {
    /// Tokens read from `path` at every call.
    pub fn file(path: &Path) -> Self {
        Self {
            origin: Origin::File(path.to_owned()),
        }
    }

    /// One token that cannot be renewed (tests, a token from the environment).
    pub fn fixed(token: &str) -> Self {
        Self {
            origin: Origin::Fixed(token.trim().to_owned()),
        }
    }

    /// Tokens of the default service account from the metadata server at `host`.
    pub fn metadata(host: &str) -> Self {
        Self {
            origin: Origin::Metadata(Box::new(TokenSource::new(MetadataClient::new(host)))),
        }
    }

    /// What a command uses: `file` when given, else `GOOGLE_OAUTH_ACCESS_TOKEN`
    /// (fixed), else the metadata server at `GCE_METADATA_HOST` (default
    /// `metadata_host`).
    pub fn for_command(file: Option<&Path>, metadata_host: &str) -> Self {
        if let Some(f) = file {
            return Self::file(f);
        }
        if let Ok(t) = std::env::var("GOOGLE_OAUTH_ACCESS_TOKEN")
            && !t.trim().is_empty()
        {
            return Self::fixed(&t);
        }
        let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| metadata_host.to_owned());
        Self::metadata(&host)
    }

    /// Where the tokens come from, in words (for errors; never the token).
    pub fn origin(&self) -> String {
        match &self.origin {
            Origin::File(p) => format!("--access-token-file {}", p.display()),
            Origin::Fixed(_) => "GOOGLE_OAUTH_ACCESS_TOKEN (cannot be renewed)".to_owned(),
            Origin::Metadata(_) => "the metadata server".to_owned(),
        }
    }

    /// A token to send now.
    pub async fn token(&self) -> Result<String, GcpError> {
        match &self.origin {
            Origin::File(path) => read_token_file(path),
            Origin::Fixed(t) if t.is_empty() => Err(GcpError::NoToken {
                origin: self.origin(),
            }),
            Origin::Fixed(t) => Ok(t.clone()),
            Origin::Metadata(source) => source.token().await,
        }
    }

    /// A token other than `rejected` (which Google refused with 401), or
    /// `None` when the origin has no other.
    pub async fn renew(&self, rejected: &str) -> Result<Option<String>, GcpError> {
        let fresh = match &self.origin {
            Origin::File(path) => read_token_file(path)?,
            Origin::Fixed(_) => return Ok(None),
            Origin::Metadata(source) => source.renew().await?,
        };
        Ok((fresh != rejected).then_some(fresh))
    }
}

fn read_token_file(path: &Path) -> Result<String, GcpError> {
    let why = |reason: String| GcpError::TokenFile {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| why(e.to_string()))?;
    // A token is a few hundred bytes; anything large is the wrong file.
    if meta.len() > 16 * 1024 {
        return Err(why(format!("{} bytes: not an access token", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| why(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(why(
            "empty, or more than one word: not an access token".into()
        ));
    }
    Ok(token.to_owned())
}

/// The access tokens of a command: `--access-token-file` (read again at
/// every call), else `GOOGLE_OAUTH_ACCESS_TOKEN`, else the metadata server
/// (renewed before expiry); one token is fetched now, so a command without
/// credentials fails before it does anything. The error names where a
/// token was looked for, never a token.
pub async fn command_tokens(file: Option<&Path>) -> Result<Arc<AccessTokens>, String> {
    let tokens = AccessTokens::for_command(file, crate::config::DEFAULT_METADATA_HOST);
    tokens.token().await.map_err(|e| {
        format!("no access token (--access-token-file, GOOGLE_OAUTH_ACCESS_TOKEN or the metadata server): {e}")
    })?;
    Ok(Arc::new(tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_file_is_read_again_at_every_call() {
        let dir = std::env::temp_dir().join(format!("lumen-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "ya29.first\n").expect("write");
        let tokens = AccessTokens::file(&path);
        assert_eq!(tokens.token().await.expect("token"), "ya29.first");
        // Unchanged file: nothing else to offer after a 401.
        assert_eq!(tokens.renew("ya29.first").await.expect("renew"), None);
        std::fs::write(&path, "ya29.second\n").expect("write");
        assert_eq!(
            tokens.renew("ya29.first").await.expect("renew"),
            Some("ya29.second".into())
        );
        assert_eq!(tokens.token().await.expect("token"), "ya29.second");
        std::fs::write(&path, "two words").expect("write");
        let err = tokens.token().await.expect_err("not a token");
        assert!(!err.to_string().contains("two words"), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[tokio::test]
    async fn a_fixed_token_cannot_be_renewed() {
        let tokens = AccessTokens::fixed("ya29.x");
        assert_eq!(tokens.token().await.expect("token"), "ya29.x");
        assert_eq!(tokens.renew("ya29.x").await.expect("renew"), None);
        assert!(!tokens.origin().contains("ya29"));
    }
}
