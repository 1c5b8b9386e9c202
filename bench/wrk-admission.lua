-- wrk script of bench/run.sh: POST the pod AdmissionReview and close the connection after
-- each response, so every admission pays a TLS handshake (the new-connection figure).
local f = assert(io.open("bench/admission-pod.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Connection"] = "close"
