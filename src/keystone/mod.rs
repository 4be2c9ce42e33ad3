//! Everything that talks to keystone: the service's own session (token,
//! catalog, project lookup), token validation for the `authtoken` filter
//! with its caches, and local JWS checks.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod identity;
pub mod options;
pub mod secret;
pub mod session;
pub mod token;

pub use error::KeystoneError;
pub use identity::{Identity, IdentityStatus};
pub use secret::Token;
pub use session::{HttpSettings, ServiceSession};
pub mod cache;
pub mod cache_crypt;
pub mod jws;
pub mod validator;

pub use validator::{InvalidToken, TokenValidator, ValidationError};
