//! Keeps OpenID Connect sessions current: every `refresh_interval` a live session's refresh
//! token is used, the person's groups are synchronised from the fresh claims (the session
//! cache picks the change up from the change feed within a second), and a refresh the
//! provider refuses (token revoked, person disabled there) ends the session.

use super::oidc::{OidcProvider, RefreshError};
use super::sync_groups;
use crate::secrets::SecretBox;
use crate::sessions::unix_now;
use portico_store::{SsoSessionRow, Store};
use std::sync::Arc;
use std::time::Duration;

/// How often due sessions are looked for.
const TICK: Duration = Duration::from_secs(5);
/// After a provider could not be reached, try that session again this soon.
const RETRY_SECS: i64 = 30;

/// The purpose under which a session's tokens are sealed.
pub fn purpose(session_hash: &str, what: &str) -> String {
    format!("sso-session:{session_hash}:{what}")
}

pub fn spawn(store: Store, secrets: SecretBox, providers: Vec<Arc<OidcProvider>>) {
    if providers
        .iter()
        .all(|p| p.config.refresh_interval.is_none())
    {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let due = match store.due_sso_sessions(unix_now(), 100).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!("cannot read sessions to refresh: {e}");
                    continue;
                }
            };
            for row in due {
                refresh_one(&store, &secrets, &providers, row).await;
            }
        }
    });
}

async fn refresh_one(
    store: &Store,
    secrets: &SecretBox,
    providers: &[Arc<OidcProvider>],
    row: SsoSessionRow,
) {
    let now = unix_now();
    let provider = providers.iter().find(|p| p.provider() == row.provider);
    let (Some(provider), Some(sealed)) = (provider, row.refresh_sealed.as_deref()) else {
        // The provider was removed from the config: nothing to refresh with.
        let _ = store
            .refreshed_sso_session(&row.session_hash, None, i64::MAX / 2)
            .await;
        return;
    };
    let interval = provider
        .config
        .refresh_interval
        .map_or(i64::MAX / 4, |d| d.as_secs() as i64);
    let refresh_token = match secrets.open(&purpose(&row.session_hash, "refresh"), sealed) {
        Ok(token) => String::from_utf8_lossy(&token).into_owned(),
        Err(e) => {
            tracing::error!("cannot open a stored refresh token: {e}");
            let _ = store
                .refreshed_sso_session(&row.session_hash, None, now + interval)
                .await;
            return;
        }
    };
    let subject = match store.external_subject(&row.provider, row.user_id).await {
        Ok(Some(subject)) => subject,
        _ => return,
    };
    match provider.refresh(&refresh_token, &subject).await {
        Ok((profile, rotated)) => {
            let user = store.user_by_id(row.user_id).await.ok().flatten();
            if let Some(user) = user {
                if let Err(e) = sync_groups(
                    store,
                    &provider.config.common,
                    user.id,
                    &user.email,
                    &profile,
                )
                .await
                {
                    tracing::error!("cannot update groups after a refresh: {e}");
                }
            }
            let sealed =
                rotated.map(|t| secrets.seal(&purpose(&row.session_hash, "refresh"), t.as_bytes()));
            let _ = store
                .refreshed_sso_session(&row.session_hash, sealed.as_deref(), now + interval)
                .await;
        }
        Err(RefreshError::Refused(reason)) => {
            tracing::info!(
                "{} refused to refresh a session of user {}; ending it: {reason}",
                row.provider,
                row.user_id
            );
            let _ = store.revoke_session(&row.session_hash, now).await;
            let _ = store
                .add_audit(&row.provider, "sign-out.provider", None, &reason)
                .await;
        }
        Err(RefreshError::Unavailable(reason)) => {
            tracing::warn!("{}: {reason}", row.provider);
            let _ = store
                .refreshed_sso_session(&row.session_hash, None, now + RETRY_SECS)
                .await;
        }
    }
}
