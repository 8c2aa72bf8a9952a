//! `/_portico/admin/groups`: the groups, their members, and a form to add one. Membership is
//! changed on the users page.

use super::admin::{check_form, require_admin, sentence};
use super::{csrf, render, Nav};
use crate::ConsoleState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use portico_core::Identity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

const PATH: &str = "/_portico/admin/groups";

struct GroupLine {
    name: String,
    members: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_groups.html")]
struct GroupsPage {
    nav: Nav,
    groups: Vec<GroupLine>,
    message: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf: String,
}

async fn page(
    state: &ConsoleState,
    headers: &HeaderMap,
    identity: &Identity,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let (token, cookie) = csrf::token(state, headers);
    let store = state.accounts.store();
    let (groups, memberships) = match (state.accounts.groups().await, store.memberships().await) {
        (Ok(groups), Ok(memberships)) => (groups, memberships),
        _ => {
            tracing::error!("the groups page cannot read the groups");
            (Vec::new(), Vec::new())
        }
    };
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (email, group) in memberships {
        members.entry(group).or_default().push(email);
    }
    let groups = groups
        .into_iter()
        .map(|g| GroupLine {
            members: members.remove(&g.name).unwrap_or_default(),
            name: g.name,
        })
        .collect();
    let page = GroupsPage {
        nav: Nav::new(identity, &token),
        groups,
        message,
        error,
    };
    csrf::with_cookie(render(status, &page), cookie)
}

pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
) -> Response {
    match require_admin(&state, &headers, &identity, PATH).await {
        Ok((identity, _)) => page(&state, &headers, &identity, StatusCode::OK, None, None).await,
        Err(response) => response,
    }
}

pub async fn add(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    Form(form): Form<GroupForm>,
) -> Response {
    let (identity, admin) = match require_admin(&state, &headers, &identity, PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(error) = check_form(&state, &headers, &form.csrf) {
        return page(
            &state,
            &headers,
            &identity,
            StatusCode::FORBIDDEN,
            None,
            Some(error),
        )
        .await;
    }
    match state.accounts.add_group(&admin.email, &form.name).await {
        Ok(()) => {
            let message = format!("Added the group \"{}\".", form.name.trim());
            page(
                &state,
                &headers,
                &identity,
                StatusCode::OK,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => {
            let error = sentence(e.to_string());
            page(
                &state,
                &headers,
                &identity,
                StatusCode::BAD_REQUEST,
                None,
                Some(error),
            )
            .await
        }
    }
}
