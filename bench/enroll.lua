-- wrk script: every request is a new instance (distinct instance-id and
-- hostname), so every request is an enrollment that ends in the cache.
--   BENCH_TOKEN  X-Auth-Token to send (empty: none)
--   BENCH_RUN    a number that makes this run's ids distinct from others'
local run = tonumber(os.getenv("BENCH_RUN") or "0")
local token = os.getenv("BENCH_TOKEN")
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
}
if token and token ~= "" then
  headers["X-Auth-Token"] = token
end

local counter = 0

function request()
  counter = counter + 1
  local tid = thread_id or 0
  local iid = string.format("%08d-%04d-4000-8000-%012d", run, tid, counter)
  local body = string.format(
    '{"project-id": null, "instance-id": "%s", "image-id": null, "user-data": null, ' ..
    '"hostname": "b%d-%d-%d", "metadata": {"ipa_enroll": "True"}, "boot-roles": "member,reader"}',
    iid, run, tid, counter)
  return wrk.format("POST", nil, headers, body)
end
