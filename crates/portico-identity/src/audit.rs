//! Audit entries from the request path (access denied), written without making any request
//! wait for the database: a bounded channel, drained by one background task. Under a flood the
//! channel fills and entries are dropped (and counted in the log) rather than slowing traffic;
//! the same refusal for the same user and app is recorded once a minute, not once a request.

use portico_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const QUEUE: usize = 1024;
const REPEAT_AFTER: Duration = Duration::from_secs(60);

struct Entry {
    actor: String,
    action: &'static str,
    subject: String,
    detail: String,
}

pub struct AuditSink {
    tx: mpsc::Sender<Entry>,
    recent: Mutex<HashMap<(String, String), Instant>>,
}

impl AuditSink {
    /// Starts the writer task.
    pub fn start(store: Store) -> AuditSink {
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Err(error) = store
                    .add_audit(&e.actor, e.action, Some(&e.subject), &e.detail)
                    .await
                {
                    tracing::warn!("could not write an audit entry: {error}");
                }
            }
        });
        AuditSink {
            tx,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Records that administrator `actor` opened someone else's private instance of `app`.
    /// Never waits.
    pub fn instance_opened(&self, actor: &str, app: &str, detail: &str) {
        self.send(actor, "instance.opened", app, detail);
    }

    /// Records that `actor` was refused `app`. Never waits.
    pub fn access_denied(&self, actor: &str, app: &str, detail: &str) {
        let key = (actor.to_owned(), app.to_owned());
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < REPEAT_AFTER)
            {
                return;
            }
            if recent.len() > 10_000 {
                recent.retain(|_, at| now.duration_since(*at) < REPEAT_AFTER);
            }
            recent.insert(key, now);
        }
        self.send(actor, "access.denied", app, detail);
    }

    /// Queues an entry for the writer; a full queue drops it with a warning rather than
    /// holding up a request.
    fn send(&self, actor: &str, action: &'static str, app: &str, detail: &str) {
        let entry = Entry {
            actor: actor.to_owned(),
            action,
            subject: app.to_owned(),
            detail: detail.to_owned(),
        };
        if self.tx.try_send(entry).is_err() {
            tracing::warn!(actor, app, action, "audit queue full: an entry was dropped");
        }
    }
}
