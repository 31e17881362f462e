-- wrk script for bench/loans.py: loan repayments spread over the seeded loans.
--
-- wrk ... -s bench/repayments.lua -- MODE LOANS_FILE API_KEY TAG PAID_AT
--   MODE        trivial | bare | repayments
--   LOANS_FILE  one "loan_id bank_id" per line
--   TAG         unique per wrk run: with the thread and a counter it makes each
--               request's Idempotency-Key and bank_txn_id unique
--   PAID_AT     the repayments' paid_at (after the payouts, not in the future)

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local mode, key, tag, paid_at
local loans = {}
local counter = 0

function init(args)
  mode, key, tag, paid_at = args[1], args[3], args[4], args[5]
  for row in io.lines(args[2]) do
    local loan, bank = row:match("^(%S+)%s+(%S+)$")
    if loan then
      loans[#loans + 1] = { loan = loan, bank = bank }
    end
  end
  counter = tid * 7919 -- threads start at different loans
end

function request()
  counter = counter + 1
  local l = loans[counter % #loans + 1]
  local txn = string.format("%s-%d-%d", tag, tid, counter)
  if mode == "trivial" then
    return wrk.format("POST", "/bench/trivial",
      { ["Content-Type"] = "application/json" }, '{"ping":1}')
  elseif mode == "bare" then
    return wrk.format("POST", "/bench/bare-repayment",
      { ["Content-Type"] = "application/json" },
      string.format('{"loan_id":"%s","bank_id":"%s","amount_fen":100,'
        .. '"bank_txn_id":"bare-%s","paid_at":"%s"}', l.loan, l.bank, txn, paid_at))
  end
  return wrk.format("POST", "/v1/loans/" .. l.loan .. "/repayments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["Idempotency-Key"] = txn,
  }, string.format('{"amount_fen":100,"bank_txn_id":"%s","paid_at":"%s"}', txn, paid_at))
end
