//! Forgetting a person (the right to erasure, ADR 0003): the key is destroyed and every
//! credential, code and session deleted, in the transaction of `HumanForgotten`.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{CommandError, SideWrites, codes};

use super::keys;

/// Destroys the person's key and every credential, code and session, with `HumanForgotten`.
pub fn erase(human_id: Uuid) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            keys::destroy(conn, human_id).await?;
            sqlx::query("DELETE FROM human_credentials WHERE human_id = $1")
                .bind(human_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE human_id = $1")
                .bind(human_id)
                .execute(&mut *conn)
                .await?;
            codes::HUMANS.delete(conn, human_id).await?;
            Ok::<_, CommandError>(())
        })
    })
}
