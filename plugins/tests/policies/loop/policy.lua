-- Adversarial: never returns.
local policy = {}

function policy.on_join(ctx)
  while true do end
end

-- Catching the budget error with pcall does not help.
function policy.on_chat(ctx, msg)
  pcall(function() while true do end end)
  return { action = "allow" }
end

-- Unbounded recursion: the Lua stack grows until the memory limit stops it.
function policy.on_knock(ctx)
  local function f(n) return 1 + f(n + 1) end
  return f(1)
end

function policy.on_moderation(ctx, action)
  return true
end

return policy
