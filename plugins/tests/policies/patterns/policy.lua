-- Adversarial: pattern matching and repetition on attacker text.
local policy = {}

-- A pattern that backtracks cubically over a subject without an "x".
function policy.on_chat(ctx, msg)
  if msg:find("(.-)(.-)(.-)x") then
    return { action = "drop", reason = "x" }
  end
  return { action = "allow" }
end

-- A gigabyte of repetition.
function policy.on_join(ctx)
  local s = string.rep("x", 1e9)
  return { action = "allow", role = "participant" }
end

-- Ordinary patterns still work: collapse spaces, count words.
function policy.on_knock(ctx)
  local name = (ctx.display_name or ""):gsub("%s+", " ")
  local words = 0
  for _ in name:gmatch("%a+") do words = words + 1 end
  if words == 2 and name == "Ada Lovelace" then return true end
  return false, "not Ada"
end

function policy.on_moderation(ctx, action)
  -- pcall cannot swallow the budget a runaway match spent.
  pcall(string.match, string.rep("a", 1000000), "(.-)(.-)(.-)x")
  return true
end

return policy
