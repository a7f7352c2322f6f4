//! High-volume events over the `/events/in` websocket: one frame per event, checkpointed with a
//! ping the server answers, and everything since the last checkpoint resent after a reconnect.
//! The server keeps an event id once, so a resent event is not stored twice.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::socket::{self, Socket};
use super::subscription::DEFAULT_MAX_RECONNECTS;
use crate::retry::{Retries, Verdict};
use crate::types::Event;
use crate::waits::{CHECKPOINT_INTERVAL, RECONNECT};
use crate::{Client, Error};

/// Events waiting to be sent; [`EventEmitter::emit`] waits while this many are queued.
pub(crate) const EMIT_QUEUE: usize = 10_000;
/// Events sent between two checkpoints.
const CHECKPOINT_EVERY: usize = 1_000;
const ROUTE: &str = "events/in";

/// Sends events over the `/events/in` websocket; from
/// [`Events::emitter`](crate::resources::events::Events::emitter). For many events: one frame
/// each, no request per event. Nothing is lost or stored twice across reconnects: events are
/// confirmed in checkpoints (the server answers a ping after reading every frame before it)
/// and whatever was not confirmed is resent (the server keeps each event id once).
///
/// Call [`close`](EventEmitter::close) at the end: it sends what is queued and says what could
/// not be sent. Dropped without it, the queue is still sent in the background while the runtime
/// runs.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, events: Vec<prefect_client::types::Event>) -> Result<(), prefect_client::Error> {
/// let emitter = client.events().emitter().await?;
/// for event in events {
///     emitter.emit(event).await?;
/// }
/// let report = emitter.close().await.map_err(|failure| failure.error)?;
/// println!("{} events sent", report.sent);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EventEmitter {
    commands: mpsc::Sender<Command>,
    worker: JoinHandle<Result<EmitReport, EmitFailure>>,
    /// Events handed to `emit` after the worker stopped.
    refused: Arc<Mutex<Vec<Event>>>,
    path: String,
}

#[derive(Debug)]
enum Command {
    Event(Box<Event>),
    Flush(oneshot::Sender<Result<(), Error>>),
}

/// What an emitter did; from [`EventEmitter::close`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitReport {
    /// Events the server's socket took before a checkpoint the server answered. Each passed
    /// [`check_event`](crate::resources::events::check_event), which refuses what Prefect's
    /// event model refuses at its default limits, so Prefect's handler takes them. This is not
    /// proof of storage: a server configured with lower limits
    /// (`PREFECT_SERVER_EVENTS_MAXIMUM_*`) drops an event it refuses, and its socket goes on
    /// answering checkpoints. Where every event must be known stored or refused, send them with
    /// [`Events::emit_all`](crate::resources::events::Events::emit_all): it answers once the
    /// server has validated the whole batch, and refuses it whole otherwise.
    pub sent: u64,
    /// Times the socket was reopened.
    pub reconnects: u32,
}

/// An emitter that stopped before sending everything: why, and the events not confirmed (send
/// them again, e.g. with [`Events::emit_all`](crate::resources::events::Events::emit_all)).
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} event(s) not confirmed by the server)", unsent.len())]
pub struct EmitFailure {
    /// Why it stopped.
    #[source]
    pub error: Error,
    /// The events the server did not confirm, in order; some may have been stored.
    pub unsent: Vec<Event>,
}

impl EventEmitter {
    pub(crate) async fn open(client: &Client) -> Result<EventEmitter, Error> {
        let path = socket::route_path(client, ROUTE);
        let socket = socket::open(client, ROUTE).await?;
        let (commands, receiver) = mpsc::channel(EMIT_QUEUE);
        let worker = Worker {
            client: client.clone(),
            path: path.clone(),
            socket: Some(socket),
            unconfirmed: Vec::new(),
            report: EmitReport::default(),
        };
        Ok(EventEmitter {
            commands,
            worker: tokio::spawn(worker.run(receiver)),
            refused: Arc::default(),
            path,
        })
    }

    /// Queues an event (waits while 10,000 are queued). Fails once the emitter has
    /// stopped; [`close`](EventEmitter::close) then returns the event among the unsent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an event Prefect would refuse
    /// ([`check_event`](crate::resources::events::check_event)): it is not queued, and the
    /// events after it still reach the server; the emitter's error once it has stopped.
    pub async fn emit(&self, event: Event) -> Result<(), Error> {
        crate::resources::events::check_event(&event)?;
        match self.commands.send(Command::Event(Box::new(event))).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(command)) => {
                if let Command::Event(event) = command
                    && let Ok(mut refused) = self.refused.lock()
                {
                    refused.push(*event);
                }
                Err(self.stopped())
            }
        }
    }

    /// Waits until every event emitted so far is confirmed by the server.
    ///
    /// # Errors
    /// The emitter's error once it stopped ([`Error::SocketLost`] after its reconnects,
    /// [`Error::SocketUnauthorized`]): [`close`](EventEmitter::close) then returns what was
    /// not confirmed.
    pub async fn flush(&self) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Sends everything queued, waits for the server to confirm it, and closes the socket.
    ///
    /// # Errors
    /// An [`EmitFailure`]: why the emitter stopped, and the events the server did not confirm.
    pub async fn close(self) -> Result<EmitReport, EmitFailure> {
        let EventEmitter {
            commands,
            worker,
            refused,
            path,
        } = self;
        drop(commands);
        let result = match worker.await {
            Ok(result) => result,
            Err(_) => Err(EmitFailure {
                error: Error::RuntimeShutdown {
                    what: "the event emitter was sending",
                },
                unsent: Vec::new(),
            }),
        };
        let refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
        match result {
            Ok(report) if refused.is_empty() => Ok(report),
            Ok(_) => Err(EmitFailure {
                error: socket::closed(&path, "the emitter stopped"),
                unsent: refused,
            }),
            Err(mut failure) => {
                failure.unsent.extend(refused);
                Err(failure)
            }
        }
    }

    fn stopped(&self) -> Error {
        socket::closed(
            &self.path,
            "the event emitter stopped after failing to reconnect; call close() for its error and the unsent events",
        )
    }
}

struct Worker {
    client: Client,
    path: String,
    socket: Option<Socket>,
    /// Sent since the last checkpoint, in order.
    unconfirmed: Vec<Event>,
    report: EmitReport,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<EmitReport, EmitFailure> {
        let mut waiting: Vec<oneshot::Sender<Result<(), Error>>> = Vec::new();
        loop {
            let command = if self.unconfirmed.is_empty() {
                self.idle(&mut commands).await
            } else {
                match tokio::time::timeout(CHECKPOINT_INTERVAL, commands.recv()).await {
                    Ok(command) => command,
                    Err(_) => {
                        if let Err(e) = self.checkpoint().await {
                            return Err(self.fail(e, commands, waiting));
                        }
                        continue;
                    }
                }
            };
            match command {
                None => {
                    return match self.checkpoint().await {
                        Ok(()) => {
                            if let Some(mut socket) = self.socket.take() {
                                let _ = socket.close(None).await;
                            }
                            Ok(self.report)
                        }
                        Err(e) => Err(self.fail(e, commands, waiting)),
                    };
                }
                Some(Command::Event(event)) => {
                    let sent = self.send(&event).await;
                    self.unconfirmed.push(*event);
                    let due = self.unconfirmed.len() >= CHECKPOINT_EVERY || commands.is_empty();
                    let result = match sent {
                        Ok(()) if due => self.checkpoint().await,
                        Ok(()) => Ok(()),
                        Err(e) => self.recover(e).await,
                    };
                    if let Err(e) = result {
                        return Err(self.fail(e, commands, waiting));
                    }
                    if self.unconfirmed.is_empty() {
                        for done in waiting.drain(..) {
                            let _ = done.send(Ok(()));
                        }
                    }
                }
                Some(Command::Flush(done)) => {
                    waiting.push(done);
                    if let Err(e) = self.checkpoint().await {
                        return Err(self.fail(e, commands, waiting));
                    }
                    for done in waiting.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
            }
        }
    }

    /// Waits for the next command while nothing is unconfirmed, reading the socket meanwhile so
    /// the server's pings are answered and a closed socket is noticed.
    async fn idle(&mut self, commands: &mut mpsc::Receiver<Command>) -> Option<Command> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return commands.recv().await;
            };
            tokio::select! {
                command = commands.recv() => return command,
                frame = socket.next() => match frame {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        // Reopened when the next event comes.
                        self.socket = None;
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Sends one event's frame (buffered; flushed by the next checkpoint or when the queue
    /// empties).
    async fn send(&mut self, event: &Event) -> Result<(), Error> {
        let Some(socket) = self.socket.as_mut() else {
            return Err(socket::closed(&self.path, "the socket is closed"));
        };
        let frame = serde_json::to_string(event).map_err(|e| socket::closed(&self.path, e.to_string()))?;
        socket
            .feed(Message::text(frame))
            .await
            .map_err(|e| socket::closed(&self.path, format!("sending failed: {e}")))
    }

    /// Confirms everything sent: pings and waits for the pong, which the server sends after
    /// reading every frame before the ping. On failure, reconnects and resends.
    async fn checkpoint(&mut self) -> Result<(), Error> {
        if self.unconfirmed.is_empty() {
            return Ok(());
        }
        match self.confirm().await {
            Ok(()) => {
                self.report.sent += self.unconfirmed.len() as u64;
                self.unconfirmed.clear();
                Ok(())
            }
            Err(e) => self.recover(e).await,
        }
    }

    async fn confirm(&mut self) -> Result<(), Error> {
        let Some(socket) = self.socket.as_mut() else {
            return Err(socket::closed(&self.path, "the socket is closed"));
        };
        let nonce: [u8; 8] = fastrand::u64(..).to_le_bytes();
        let path = self.path.clone();
        let wait = async {
            socket
                .send(Message::Ping(nonce.to_vec().into()))
                .await
                .map_err(|e| socket::closed(&path, format!("sending failed: {e}")))?;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Pong(data))) if data.as_ref() == nonce => return Ok(()),
                    Some(Ok(Message::Close(frame))) => return Err(socket::close_error(&path, frame)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(socket::closed(&path, e.to_string())),
                    None => return Err(socket::closed(&path, "the server ended the connection")),
                }
            }
        };
        let limit = self.client.config().request_timeout();
        match tokio::time::timeout(limit, wait).await {
            Ok(result) => result,
            Err(_) => Err(socket::closed(
                &self.path,
                format!("no answer to a checkpoint within {limit:?}"),
            )),
        }
    }

    /// Reopens the socket (with backoff, bounded attempts), resends what is unconfirmed and
    /// confirms it.
    async fn recover(&mut self, mut error: Error) -> Result<(), Error> {
        let mut reconnects = Retries::new(RECONNECT.at_most(DEFAULT_MAX_RECONNECTS));
        loop {
            let permanent = socket::is_permanent(&error);
            let pause = reconnects.failed(Verdict::retry_if(!permanent));
            if permanent {
                return Err(error);
            }
            tracing::warn!(path = %self.path, error = %error, unconfirmed = self.unconfirmed.len(), "event emitter reconnecting");
            self.socket = None;
            let Some(pause) = pause else {
                return Err(Error::SocketLost {
                    path: self.path.clone(),
                    attempts: reconnects.retries(),
                    last: Box::new(error),
                });
            };
            tokio::time::sleep(pause).await;
            match self.resend().await {
                Ok(()) => {
                    self.report.reconnects += 1;
                    self.report.sent += self.unconfirmed.len() as u64;
                    self.unconfirmed.clear();
                    return Ok(());
                }
                Err(e) => error = e,
            }
        }
    }

    async fn resend(&mut self) -> Result<(), Error> {
        self.socket = Some(socket::open(&self.client, ROUTE).await?);
        let events = std::mem::take(&mut self.unconfirmed);
        let mut result = Ok(());
        for event in &events {
            result = self.send(event).await;
            if result.is_err() {
                break;
            }
        }
        self.unconfirmed = events;
        result?;
        self.confirm().await
    }

    fn fail(
        mut self,
        error: Error,
        mut commands: mpsc::Receiver<Command>,
        waiting: Vec<oneshot::Sender<Result<(), Error>>>,
    ) -> EmitFailure {
        commands.close();
        let mut unsent = std::mem::take(&mut self.unconfirmed);
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Event(event) => unsent.push(*event),
                Command::Flush(done) => {
                    let _ = done.send(Err(socket::closed(&self.path, error.to_string())));
                }
            }
        }
        for done in waiting {
            let _ = done.send(Err(socket::closed(&self.path, error.to_string())));
        }
        EmitFailure { error, unsent }
    }
}
