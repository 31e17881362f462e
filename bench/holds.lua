-- wrk script for bench/authorizations.py: POSTs spread over the seeded visits.
--
-- wrk ... -s bench/holds.lua -- MODE VISITS_FILE API_KEY TAG
--   MODE        trivial | bare | authorizations
--   VISITS_FILE one "visit_id credit_line_id hospital_id" per line
--   TAG         unique per wrk run: with the thread and a counter it makes each
--               request's Idempotency-Key and his_order_id unique

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local mode, key, tag
local visits = {}
local counter = 0

function init(args)
  mode, key, tag = args[1], args[3], args[4]
  for row in io.lines(args[2]) do
    local visit, line, hospital = row:match("^(%S+)%s+(%S+)%s+(%S+)$")
    if visit then
      visits[#visits + 1] = { visit = visit, line = line, hospital = hospital }
    end
  end
  counter = tid * 7919 -- threads start at different visits
end

function request()
  counter = counter + 1
  local v = visits[counter % #visits + 1]
  local order = string.format("%s-%d-%d", tag, tid, counter)
  if mode == "trivial" then
    return wrk.format("POST", "/bench/trivial",
      { ["Content-Type"] = "application/json" }, '{"ping":1}')
  elseif mode == "bare" then
    return wrk.format("POST", "/bench/bare-hold",
      { ["Content-Type"] = "application/json" },
      string.format('{"visit_id":"%s","credit_line_id":"%s","hospital_id":"%s",'
        .. '"amount_fen":100,"his_order_id":"%s","description":"bench"}',
        v.visit, v.line, v.hospital, order))
  end
  return wrk.format("POST", "/v1/visits/" .. v.visit .. "/authorizations", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["Idempotency-Key"] = order,
  }, string.format('{"amount_fen":100,"his_order_id":"%s","description":"bench"}', order))
end
