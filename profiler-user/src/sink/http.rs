//! The HTTP client settings every network sink shares: timeout, auth, extra headers and TLS
//! (a custom CA, a client certificate). Secrets are read by the configuration (from a file
//! or the environment) and never printed: [`Secret`] masks itself.

use std::path::PathBuf;
use std::time::Duration;

use super::SinkError;

/// A string that does not print.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<secret>\"")
    }
}

#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    pub timeout: Option<Duration>,
    pub bearer_token: Option<Secret>,
    /// User and password.
    pub basic_auth: Option<(String, Secret)>,
    /// Extra headers (values may be secrets, so they are masked in the effective config).
    pub headers: Vec<(String, Secret)>,
    /// PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM files of a client certificate (chain) and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|source| SinkError::Io {
        path: path.clone(),
        source,
    })
}

impl HttpOptions {
    pub fn client(&self) -> Result<reqwest::blocking::Client, SinkError> {
        let mut b = reqwest::blocking::Client::builder()
            .user_agent(concat!("gprof-bpf/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout.unwrap_or(Duration::from_secs(10)))
            .use_rustls_tls();
        if let Some(ca) = &self.ca_file {
            let pem = read(ca)?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| SinkError::Encode(format!("{}: {e}", ca.display())))?
            {
                b = b.add_root_certificate(c);
            }
        }
        if let Some((cert, key)) = &self.client_cert {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| SinkError::Encode(format!("{}: {e}", cert.display())))?;
            b = b.identity(id);
        }
        b.build().map_err(|e| SinkError::Encode(e.to_string()))
    }

    /// Adds auth and the extra headers to a request.
    pub fn apply(
        &self,
        mut r: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        if let Some(t) = &self.bearer_token {
            r = r.bearer_auth(&t.0);
        }
        if let Some((user, pass)) = &self.basic_auth {
            r = r.basic_auth(user, Some(&pass.0));
        }
        for (k, v) in &self.headers {
            r = r.header(k, &v.0);
        }
        r
    }
}

/// A request that got no answer: retried, with the reason counted.
pub fn transport_error(e: &reqwest::Error) -> super::queue::Outcome {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    super::queue::Outcome::Retry {
        reason: reason.into(),
        after: None,
    }
}
