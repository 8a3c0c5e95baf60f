-- Salon's default room policy, modelled on the French State's service.
--
-- * Agents may create rooms. An agent is anyone with a valid token (when
--   TRUST_TOKENS is true) or a verified identity whose e-mail domain is in
--   AGENT_DOMAINS (subdomains included). Someone signed in with OIDC
--   ("Se connecter", docs/oidc.md) is an agent only by AGENT_DOMAINS: the
--   provider vouches for the e-mail address, not for the person's role.
-- * Moderators are the token holders whose token carries the moderator flag
--   (Jitsi's `context.user.moderator`), and the agent who creates the room.
--   Any other agent is a participant (in the lobby if the room is locked). A
--   token for every room (`room: "*"`) moderates nothing without the flag.
-- * Guests (no token) may join only a room that already exists, and wait in
--   its lobby until a moderator admits them.
-- * A room holds at most MAX_ROOM_SIZE participants.
-- * Chat messages longer than MAX_CHAT_CHARS characters are dropped.
-- * Only moderators may moderate (the server checks roles too).
-- * Each receiver gets the video of at most LAST_N senders (screen share and
--   speakers first); guests receive at most GUEST_MAX_KBPS of video.
-- * A room ends when its last participant leaves (the gateway does that;
--   on_room_end is told).
--
-- See docs/lua-api.md for the hook API. Reload with SIGHUP.

local agents = require("agents")

-- Configuration -------------------------------------------------------------

-- Any valid token makes its holder an agent.
local TRUST_TOKENS = true

-- Verified e-mail domains whose holders are agents (subdomains included): the
-- allowed e-mail domains of tokens and of OIDC logins.
local AGENT_DOMAINS = { "gouv.fr", "interieur.gouv.fr" }

local MAX_ROOM_SIZE = 100
local MAX_CHAT_CHARS = 2000

-- Video senders each participant receives (last-N), and the video bitrate a
-- guest may receive (nil: no cap beyond what its link carries).
local LAST_N = 20
local GUEST_MAX_KBPS = 2500

-------------------------------------------------------------------------------

local is_agent = agents.matcher({ trust_tokens = TRUST_TOKENS, domains = AGENT_DOMAINS })

local policy = {}

function policy.on_room_create(ctx)
  if is_agent(ctx.identity) then
    return true
  end
  return false, "only agents can create a room"
end

function policy.on_join(ctx)
  local room = ctx.room
  if room.size >= MAX_ROOM_SIZE then
    return { action = "deny", reason = "this room is full" }
  end
  local identity = ctx.identity
  if identity ~= nil and identity.moderator then
    return { action = "allow", role = "moderator" }
  end
  if is_agent(identity) and not room.exists then
    -- Whoever opens the room hosts it.
    return { action = "allow", role = "moderator" }
  end
  if not room.exists then
    return { action = "deny", reason = "this room does not exist yet; wait for its host" }
  end
  if identity ~= nil then
    -- Authenticated, without the moderator flag: a participant, unless the
    -- room is locked.
    if room.locked then
      return { action = "lobby" }
    end
    return { action = "allow", role = "participant" }
  end
  return { action = "lobby" }
end

-- A guest in the lobby waits for a moderator to admit them.
function policy.room_settings(ctx)
  return { last_n = LAST_N }
end

function policy.media_limits(ctx)
  if ctx.role == "guest" and GUEST_MAX_KBPS then
    return { max_bitrate_kbps = GUEST_MAX_KBPS }
  end
  return nil
end

function policy.on_knock(ctx)
  return false, "waiting for a moderator"
end

function policy.on_chat(ctx, msg)
  local n = utf8.len(msg) or #msg
  if n > MAX_CHAT_CHARS then
    return { action = "drop", reason = "message too long" }
  end
  return { action = "allow" }
end

function policy.on_moderation(ctx, action)
  if ctx.role ~= "moderator" then
    return false, "only moderators can do that"
  end
  return true
end

function policy.on_room_end(ctx)
  salon.log("info", "room ended")
end

return policy
