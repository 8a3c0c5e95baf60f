-- Salon's open policy: Jitsi's anonymous default.
--
-- * Anyone may create a room and join any room (no token needed).
-- * The first participant of a room is its moderator; later ones are
--   participants. A token holder with the moderator flag is a moderator too.
-- * No lobby; a moderator can still lock the room, kick, mute (the gateway
--   checks roles itself).
--
-- Use it with `salon --policy lua/open.lua` (the browser tests and the perf
-- harness do). See docs/lua-api.md for the hook API.

local open = {}

function open.on_room_create(ctx)
  return true
end

function open.on_join(ctx)
  if not ctx.room.exists or ctx.room.size == 0 then
    return { action = "allow", role = "moderator" }
  end
  if ctx.identity ~= nil and ctx.identity.moderator then
    return { action = "allow", role = "moderator" }
  end
  return { action = "allow", role = "participant" }
end

-- Nobody waits here, but a guest sent to the lobby by a kick may come back.
function open.on_knock(ctx)
  return true
end

function open.on_moderation(ctx, action)
  return ctx.role == "moderator"
end

return open
