-- Adversarial: returns things that are not decisions. ctx.display_name picks which.
local returns = {
  number = function() return 42 end,
  none = function() return nil end,
  unknown_action = function() return { action = "maybe" } end,
  unknown_role = function() return { action = "allow", role = "admin" } end,
  role_type = function() return { action = "allow", role = 1 } end,
  long_reason = function() return { action = "deny", reason = string.rep("x", 201) } end,
  reason_type = function() return { action = "deny", reason = {} } end,
  control_reason = function() return { action = "deny", reason = "a\nb" } end,
  ok_deny = function() return { action = "deny", reason = "closed today" } end,
  ok_allow_no_role = function() return { action = "allow" } end,
}

local policy = {}

function policy.on_join(ctx)
  return returns[ctx.display_name]()
end

function policy.on_room_create(ctx)
  return "yes"
end

function policy.on_knock(ctx)
  return false, 7
end

function policy.on_chat(ctx, msg)
  if msg == "long" then return { action = "rewrite", text = string.rep("x", 9000) } end
  if msg == "drop" then return { action = "drop" } end
  return { action = "rewrite" }
end

return policy
