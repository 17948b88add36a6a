//! Tokens: keys, verification, issuing.

pub mod authn;
mod b64;
mod claims;
pub mod grant;
pub mod issue;
pub mod keys;
pub mod ring;
pub(crate) mod scan;
pub mod verify;

pub use authn::{AuthnError, TokenAuthenticator};
pub use claims::Claims;
pub use grant::{GrantError, Granted, Grants};
pub use issue::{AccessClaims, IssueError, Issued, SecretToken, TokenIssuer};
pub use keys::{KeyError, KeySet, SigningKey, VerifyKey};
pub use ring::{KeyRing, RingError};
pub use verify::{IssuerPolicy, TokenError, VerifiedToken, Verifier, bearer_token};

/// The JOSE algorithms, as `jsonwebtoken` names them.
pub use jsonwebtoken::Algorithm;
pub use keys::{alg_name, parse_alg};
