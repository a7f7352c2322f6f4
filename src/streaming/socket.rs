//! Opening one of Prefect's websockets: an HTTP/1.1 upgrade sent through reqwest (so TLS,
//! certificates, proxies and credentials are the HTTP client's), then Prefect's handshake: the
//! `prefect` subprotocol and an `auth` frame answered by `auth_success`.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use crate::{Client, Error};

/// An open, authenticated websocket to the Prefect API.
pub(crate) type Socket = WebSocketStream<reqwest::Upgraded>;

/// The largest frame accepted from the server (an event or log line; Prefect caps events at
/// 1.5 MB by default).
const MAX_MESSAGE: usize = 16 << 20;

/// The subprotocol Prefect's authenticated handshake runs under.
const SUBPROTOCOL: &str = "prefect";

/// Opens the websocket at `route` (`"events/out"`, `"events/in"`, `"logs/out"`) under the
/// client's API URL and authenticates on it. The whole handshake is bounded by the client's
/// request timeout.
pub(crate) async fn open(client: &Client, route: &str) -> Result<Socket, Error> {
    let path = route_path(client, route);
    let limit = client.config().request_timeout();
    match tokio::time::timeout(limit, handshake(client, route, &path)).await {
        Ok(result) => result,
        Err(_) => Err(Error::SocketClosed {
            path,
            detail: format!("the handshake did not finish within {limit:?} (the request timeout)"),
        }),
    }
}

/// The API path of a route, for errors: `/api/events/out`.
pub(crate) fn route_path(client: &Client, route: &str) -> String {
    match reqwest::Url::parse(client.api_url()) {
        Ok(url) => format!("{}/{route}", url.path().trim_end_matches('/')),
        Err(_) => format!("/{route}"),
    }
}

async fn handshake(client: &Client, route: &str, path: &str) -> Result<Socket, Error> {
    use base64::Engine;
    let url = format!("{}/{route}", client.api_url().trim_end_matches('/'));
    let key = base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_le_bytes());
    let request = client
        .socket_http()?
        .get(url)
        .version(reqwest::Version::HTTP_11)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_VERSION, "13")
        .header(SEC_WEBSOCKET_KEY, &key)
        .header(SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL);
    // Credentials on the upgrade too: proxies in front of a server with basic auth refuse
    // unauthenticated upgrades.
    let response = client
        .authorized(request)
        .send()
        .await
        .map_err(|e| Error::from_reqwest(e).in_client(client.config()))?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        if status.is_client_error() || status.is_server_error() {
            return Err(Error::from_response(response).await);
        }
        return Err(Error::SocketRejected {
            path: path.to_string(),
            detail: format!(
                "the upgrade was answered {status} instead of 101 Switching Protocols: something in front \
                 of Prefect does not pass websockets"
            ),
        });
    }
    let headers = response.headers();
    let accepted = headers.get(SEC_WEBSOCKET_ACCEPT).and_then(|v| v.to_str().ok());
    if accepted != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(Error::SocketRejected {
            path: path.to_string(),
            detail: "the upgrade's Sec-WebSocket-Accept does not match the key sent".into(),
        });
    }
    // A server without auth answers a client that does not offer the subprotocol in legacy mode
    // (no handshake); one that takes the subprotocol expects the auth frame.
    let authenticate = headers.get(SEC_WEBSOCKET_PROTOCOL) == Some(&HeaderValue::from_static(SUBPROTOCOL));
    let mut upgraded = response.upgrade().await.map_err(Error::from_reqwest)?;
    if authenticate {
        // Written here, not through tungstenite: it logs every frame it sends (at trace level,
        // payload included), and this one carries the credentials.
        let auth = json!({ "type": "auth", "token": auth_token(client) });
        tokio::io::AsyncWriteExt::write_all(&mut upgraded, &masked_text_frame(auth.to_string().as_bytes()))
            .await
            .map_err(|e| closed(path, format!("sending the auth frame failed: {e}")))?;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await;
    if authenticate {
        match next_text(&mut socket, path).await? {
            Some(frame) if is_auth_success(&frame) => {}
            Some(frame) => {
                return Err(Error::SocketClosed {
                    path: path.to_string(),
                    detail: format!(
                        "expected auth_success, the server sent {}",
                        crate::response::excerpt(frame.as_bytes())
                    ),
                });
            }
            None => {
                return Err(Error::SocketClosed {
                    path: path.to_string(),
                    detail: "the server closed the socket during the handshake".into(),
                });
            }
        }
    }
    Ok(socket)
}

/// One final, masked text frame as a client sends it (RFC 6455 §5.2).
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x81); // FIN + text
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let mask = fastrand::u32(..).to_be_bytes();
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
    frame
}

fn is_auth_success(frame: &str) -> bool {
    serde_json::from_str::<Frame<serde::de::IgnoredAny>>(frame).is_ok_and(|f| f.kind == "auth_success")
}

/// The token of the `auth` frame: the API key (Prefect Cloud), else the auth string (a server
/// with basic auth), else none.
fn auth_token(client: &Client) -> Value {
    use secrecy::ExposeSecret;
    let config = client.config();
    match (&config.api_key, &config.auth_string) {
        (Some(key), _) => Value::String(key.expose_secret().to_string()),
        (None, Some(auth)) => Value::String(auth.expose_secret().to_string()),
        (None, None) => Value::Null,
    }
}

/// Sends one JSON text frame.
pub(crate) async fn send(socket: &mut Socket, path: &str, message: &Value) -> Result<(), Error> {
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|e| closed(path, format!("sending failed: {e}")))
}

/// A frame of Prefect's: `{"type": "event", "event": {...}}`, `{"type": "log", "log": {...}}`
/// or `{"type": "auth_success"}`.
#[derive(serde::Deserialize)]
pub(crate) struct Frame<T> {
    /// The frame's type.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The event or log line it carries.
    #[serde(alias = "event", alias = "log", default = "Option::default")]
    pub(crate) item: Option<T>,
}

/// The next text frame, answering nothing itself (tungstenite answers pings); `None` once the
/// server closes normally. A close with 1008 or 1002 is a typed error.
pub(crate) async fn next_text(socket: &mut Socket, path: &str) -> Result<Option<String>, Error> {
    loop {
        match socket.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(closed(path, e.to_string())),
            Some(Ok(Message::Text(text))) => return Ok(Some(text.to_string())),
            Some(Ok(Message::Binary(bytes))) => {
                return Err(closed(
                    path,
                    format!(
                        "the server sent a binary frame, not Prefect's JSON: {}",
                        crate::response::excerpt(&bytes)
                    ),
                ));
            }
            Some(Ok(Message::Close(frame))) => return Err(close_error(path, frame)),
            Some(Ok(_)) => continue,
        }
    }
}

/// The error a close frame means: 1008 credentials, 1002 the request, anything else a broken
/// socket (reconnected).
pub(crate) fn close_error(path: &str, frame: Option<CloseFrame>) -> Error {
    let (code, reason) = match &frame {
        Some(frame) => (frame.code, frame.reason.to_string()),
        None => (CloseCode::Status, String::new()),
    };
    let reason = if reason.is_empty() {
        "no reason given".to_string()
    } else {
        reason
    };
    match code {
        CloseCode::Policy => Error::SocketUnauthorized {
            path: path.to_string(),
            detail: reason,
        },
        CloseCode::Protocol | CloseCode::Unsupported | CloseCode::Invalid => Error::SocketRejected {
            path: path.to_string(),
            detail: format!("close code {}: {reason}", u16::from(code)),
        },
        _ => closed(
            path,
            format!("the server closed it (code {}: {reason})", u16::from(code)),
        ),
    }
}

/// A broken socket.
pub(crate) fn closed(path: &str, detail: impl Into<String>) -> Error {
    Error::SocketClosed {
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// Whether reconnecting can help after this error: not for credentials, a refused filter, TLS
/// or configuration problems.
pub(crate) fn is_permanent(error: &Error) -> bool {
    matches!(
        error,
        Error::SocketUnauthorized { .. }
            | Error::SocketRejected { .. }
            | Error::Unauthorized(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::Tls { .. }
            | Error::Config(_)
            | Error::InvalidInput { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unmasks a frame of `masked_text_frame`: header, length, mask, payload.
    fn unmask(frame: &[u8]) -> Vec<u8> {
        assert_eq!(frame[0], 0x81, "final text frame");
        assert_eq!(frame[1] & 0x80, 0x80, "masked");
        let (len, at) = match frame[1] & 0x7F {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize, 10),
            len => (len as usize, 2),
        };
        let mask = &frame[at..at + 4];
        let payload = &frame[at + 4..];
        assert_eq!(payload.len(), len);
        payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect()
    }

    #[test]
    fn the_auth_frame_is_a_masked_text_frame_of_any_length() {
        for len in [0, 5, 125, 126, 300, 0xFFFF, 0x10000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(unmask(&masked_text_frame(&payload)), payload, "length {len}");
        }
    }
}
