-- Adversarial: tries to leave the sandbox. ctx.display_name picks the attempt.
local attempts = {
  io_open = function() return io.open("/etc/passwd") end,
  os_execute = function() return os.execute("true") end,
  os_exit = function() return os.exit(1) end,
  os_getenv = function() return os.getenv("HOME") end,
  load_dump = function() return load(string.dump(function() end))() end,
  dofile = function() return dofile("/etc/passwd") end,
  require_passwd = function() return require("../etc/passwd") end,
  require_dotted = function() return require("escape.policy") end,
  require_missing = function() return require("nothere") end,
  debug_getinfo = function() return debug.getinfo(1) end,
  ctx_write = function(ctx) ctx.role = "moderator" end,
  ctx_nested_write = function(ctx) ctx.room.roles.moderator = 0 end,
  ctx_room_write = function(ctx) ctx.room.name = "x" end,
  ctx_claims_write = function(ctx) ctx.identity.claims.context.groups[1] = "x" end,
  rawset_ctx = function(ctx) rawset(ctx, "role", "moderator") end,
  setmetatable_ctx = function(ctx) setmetatable(ctx, nil) end,
  gc_metamethod = function() setmetatable({}, { __gc = function() end }) end,
  pcall_ctx_write = function(ctx) pcall(function() ctx.role = "moderator" end) end,
  collectgarbage = function() collectgarbage("stop") end,
  coroutine = function() return coroutine.create(function() end) end,
  package = function() return package.loadlib("libc.so.6", "system") end,
}

local policy = {}

function policy.on_join(ctx)
  local attempt = attempts[ctx.display_name]
  if attempt then attempt(ctx) end
  return { action = "allow", role = "moderator" }
end

-- What the sandbox does leave: checked by the tests.
function policy.on_chat(ctx, msg)
  if msg == "probe" then
    local seen = {}
    for _, name in ipairs({ "io", "debug", "load", "loadstring", "dofile", "loadfile",
                            "collectgarbage", "rawset", "print", "warn", "package", "coroutine" }) do
      if _G[name] ~= nil then seen[#seen + 1] = name end
    end
    if string.dump ~= nil then seen[#seen + 1] = "string.dump" end
    for k in pairs(os) do
      if k ~= "time" and k ~= "clock" and k ~= "date" then seen[#seen + 1] = "os." .. k end
    end
    return { action = "rewrite", text = table.concat(seen, ",") }
  elseif msg == "ctx" then
    -- ctx reads, pairs, # and json work through the read-only proxies.
    local keys = {}
    for k in pairs(ctx.room) do keys[#keys + 1] = k end
    table.sort(keys)
    local groups = ctx.identity and ctx.identity.claims.context.groups
    return { action = "rewrite", text = table.concat(keys, ",") .. "|" ..
      tostring(groups and #groups) .. "|" .. salon.json.encode(ctx.room.roles) ..
      "|" .. tostring(getmetatable(ctx)) }
  elseif msg == "json" then
    local v, err = salon.json.decode('{"a":[1,2,{"b":null}],"c":"d"}')
    local bad, berr = salon.json.decode("{nope")
    local ok = pcall(salon.json.encode, { f = function() end })
    return { action = "rewrite", text = salon.json.encode(v.a) .. "|" .. v.c .. "|" ..
      tostring(bad) .. "|" .. berr .. "|" .. tostring(ok) }
  elseif msg == "log" then
    for i = 1, 100 do salon.log("info", "line " .. i) end
    return { action = "allow" }
  end
  return { action = "allow" }
end

return policy
