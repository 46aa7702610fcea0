//! libauth: Ollama's device-key authentication, byte for byte.
//!
//! - [`key`]: Ed25519 keys in OpenSSH format, public key lines, fingerprints;
//! - [`token`]: `KEY:SIGNATURE` tokens, signed, parsed and verified;
//! - [`challenge`]: what is signed, for API requests and registry tokens;
//! - [`connect`]: the URL that attaches a key to an ollama.com account;
//! - [`base`]: base URLs under Ollama's rules;
//! - [`client`]: a fail-safe HTTP client for ollama.com and the local server;
//! - [`account`]: `/api/me`, disconnecting a key, the local sign-out;
//! - [`local`]: the local Ollama server's address (`OLLAMA_HOST`);
//! - [`fsutil`]: atomic writes and careful reads of key files;
//! - [`lines`]: line-by-line input with a bound on each line;
//! - [`store`]: where the device key and an API key live (file or OS keyring);
//! - [`authorized_keys`]: who may sign: OpenSSH authorized_keys files;
//! - [`verify`]: verdicts on tokens and requests, replay cache, batches;
//! - [`serve`]: the HTTP verifier of `olm-verify --serve`;
//! - [`http`]: its small, bounded HTTP/1.1 layer;
//! - [`standin`]: ollama.com's endpoints over a local key list;
//! - [`cli`]: the plumbing every `olm-*` binary shares;
//! - [`generate`]: man pages and shell completions from a tool's clap definition.

pub mod account;
pub mod authorized_keys;
pub mod base;
pub mod challenge;
pub mod cli;
pub mod client;
pub mod connect;
pub mod error;
pub mod fsutil;
pub mod generate;
pub mod http;
pub mod key;
pub mod lines;
pub mod local;
pub mod serve;
pub mod standin;
pub mod store;
pub mod token;
pub mod verify;

pub use account::{SignOut, User, Whoami};
pub use base::BaseUrl;
pub use challenge::{ApiRequest, Challenge, RegistryChallenge};
pub use client::{Client, Method, RemoteFailure, Timeouts};
pub use connect::{connect_url, ConnectForm};
pub use error::{Error, ExitKind, Result};
pub use key::{PrivateKey, PublicKey};
pub use local::LocalHost;
pub use store::{ApiKey, Backend, Store};
pub use token::{KeyCache, Signer, Token};
