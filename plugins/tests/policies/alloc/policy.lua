-- Adversarial: allocates without bound.
local policy = {}

function policy.on_join(ctx)
  local t = {}
  while true do t[#t + 1] = string.rep("x", 1e6) end
end

-- Catching the memory error with pcall does not help.
function policy.on_knock(ctx)
  pcall(function()
    local t = {}
    while true do t[#t + 1] = string.rep("y", 1e6) end
  end)
  return true
end

-- One huge string at once.
function policy.on_room_create(ctx)
  local s = string.rep("z", 1e9)
  return true
end

function policy.on_chat(ctx, msg)
  return { action = "rewrite", text = string.upper(msg) }
end

return policy
