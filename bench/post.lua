-- wrk script: POSTs the same nova vendordata request again and again (the
-- cache-hit path once the first answer is stored).
--   BENCH_BODY_FILE  the request body (nova's JSON)
--   BENCH_TOKEN      X-Auth-Token to send (empty: none)
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "openstack-nova-vendordata"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Auth-Token"] = token
end
