//! Rust ⇄ Lua values: read-only `ctx` tables and JSON.

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::{Ctx, ModerationAction};

/// Deepest JSON nesting converted either way.
const MAX_DEPTH: usize = 64;
/// The `__metatable` value of a read-only proxy.
const MARK: &str = "read-only";

/// The prelude's builders of read-only tables.
pub(super) struct ReadOnly {
    pub(super) make_ctx: Function,
    pub(super) make_action: Function,
}

/// The table behind a read-only proxy.
pub(super) fn proxy_inner(p: &Table) -> Option<Table> {
    let mt = p.metatable()?;
    match mt.raw_get::<Value>("__metatable").ok()? {
        Value::String(s) if s.as_bytes().as_ref() == MARK.as_bytes() => {
            mt.raw_get::<Table>("__index").ok()
        }
        _ => None,
    }
}

fn opt_str(lua: &Lua, v: Option<&str>) -> mlua::Result<Value> {
    match v {
        Some(s) => Ok(Value::String(lua.create_string(s)?)),
        None => Ok(Value::Nil),
    }
}

/// The read-only `ctx` table, built by the prelude in one call.
pub(super) fn ctx_table(lua: &Lua, ro: &ReadOnly, ctx: &Ctx<'_>) -> mlua::Result<Table> {
    let mut args: Vec<Value> = Vec::with_capacity(20);
    args.push(opt_str(lua, ctx.display_name)?);
    args.push(opt_str(lua, ctx.participant_id)?);
    args.push(opt_str(lua, ctx.role.map(super::Role::as_str))?);
    args.push(Value::Integer(i64::try_from(ctx.now).unwrap_or(i64::MAX)));
    args.push(Value::String(lua.create_string(ctx.room.name)?));
    args.push(Value::Integer(ctx.room.size.into()));
    args.push(Value::Boolean(ctx.room.locked));
    args.push(Value::Boolean(ctx.room.exists));
    args.push(Value::Integer(ctx.room.roles.moderator.into()));
    args.push(Value::Integer(ctx.room.roles.participant.into()));
    args.push(Value::Integer(ctx.room.roles.guest.into()));
    if let Some(id) = ctx.identity {
        args.push(Value::String(lua.create_string(&id.issuer)?));
        args.push(opt_str(lua, id.sub.as_deref())?);
        args.push(opt_str(lua, id.user_id.as_deref())?);
        args.push(opt_str(lua, id.name.as_deref())?);
        args.push(opt_str(lua, id.email.as_deref())?);
        args.push(opt_str(lua, id.avatar.as_deref())?);
        args.push(Value::Boolean(id.moderator));
        args.push(Value::String(lua.create_string(&id.room)?));
        let claims = match json_to_lua(lua, &id.claims, 0)? {
            t @ Value::Table(_) => t,
            _ => Value::Table(lua.create_table()?),
        };
        args.push(claims);
        args.push(Value::String(lua.create_string(id.source.as_str())?));
    }
    ro.make_ctx.call(MultiValue::from_vec(args))
}

/// The read-only `action` table of `on_moderation`.
pub(super) fn action_table(
    lua: &Lua,
    ro: &ReadOnly,
    a: &ModerationAction<'_>,
) -> mlua::Result<Table> {
    ro.make_action
        .call((a.kind.as_str(), opt_str(lua, a.target)?))
}

/// JSON to Lua; `null` becomes `nil`.
pub(super) fn json_to_lua(lua: &Lua, v: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("json: nested too deeply"));
    }
    Ok(match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x, depth + 1)?)?;
            }
            Value::Table(t)
        }
        J::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(k.as_str(), json_to_lua(lua, x, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Lua to JSON. A table whose keys are exactly `1..n` is an array (an empty
/// table is `{}`); other tables need string or number keys. Read-only
/// proxies are followed. Functions, userdata, NaN and deep nesting are errors.
pub(super) fn lua_to_json(v: &Value, depth: usize) -> mlua::Result<serde_json::Value> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("json: nested too deeply"));
    }
    Ok(match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Number(n) => J::Number(
            serde_json::Number::from_f64(*n)
                .ok_or_else(|| mlua::Error::runtime("json: NaN or infinite number"))?,
        ),
        Value::String(s) => J::String(
            s.to_str()
                .map_err(|_| mlua::Error::runtime("json: string is not UTF-8"))?
                .to_owned(),
        ),
        Value::Table(t) => {
            let t = proxy_inner(t).unwrap_or_else(|| t.clone());
            let mut entries: Vec<(Value, Value)> = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                entries.push(pair?);
            }
            let n = entries.len();
            let is_array = n > 0
                && entries.iter().all(|(k, _)| {
                    matches!(k, Value::Integer(i) if *i >= 1 && usize::try_from(*i).is_ok_and(|i| i <= n))
                });
            if is_array {
                let mut arr = vec![J::Null; n];
                for (k, x) in &entries {
                    if let Value::Integer(i) = k
                        && let Some(slot) =
                            usize::try_from(*i - 1).ok().and_then(|i| arr.get_mut(i))
                    {
                        *slot = lua_to_json(x, depth + 1)?;
                    }
                }
                J::Array(arr)
            } else {
                let mut map = serde_json::Map::new();
                for (k, x) in &entries {
                    let key = match k {
                        Value::String(s) => s
                            .to_str()
                            .map_err(|_| mlua::Error::runtime("json: key is not UTF-8"))?
                            .to_owned(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(f) => f.to_string(),
                        _ => return Err(mlua::Error::runtime("json: unsupported key type")),
                    };
                    map.insert(key, lua_to_json(x, depth + 1)?);
                }
                J::Object(map)
            }
        }
        _ => return Err(mlua::Error::runtime("json: unsupported value type")),
    })
}
