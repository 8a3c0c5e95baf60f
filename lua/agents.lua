-- Who counts as an agent (a State employee). Used by policy.lua.

local agents = {}

-- True if `domain` is `allowed` or one of its subdomains.
local function in_domain(domain, allowed)
  if domain == allowed then
    return true
  end
  local suffix = "." .. allowed
  return #domain > #suffix and domain:sub(-#suffix) == suffix
end

-- Returns a function(identity) -> bool.
-- opts.trust_tokens: any identity from a verified token is an agent.
-- opts.domains: e-mail domains whose holders are agents. An identity from an
-- OIDC login (identity.source == "oidc") is judged by its e-mail domain only:
-- anyone with an account at the provider can log in.
function agents.matcher(opts)
  local domains = {}
  for i, d in ipairs(opts.domains or {}) do
    domains[i] = string.lower(d)
  end
  return function(identity)
    if identity == nil then
      return false
    end
    if opts.trust_tokens and identity.source ~= "oidc" then
      return true
    end
    local domain = identity.email and salon.email_domain(identity.email)
    if domain == nil then
      return false
    end
    for _, allowed in ipairs(domains) do
      if in_domain(domain, allowed) then
        return true
      end
    end
    return false
  end
end

return agents
