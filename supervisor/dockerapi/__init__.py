"""The Docker Engine API, served by the daemon over the same fleet as Corral's
own protocol: HTTP/1.1 through h11 on trio (http.py), routed by path
(server.py), each endpoint translating Docker's JSON to Corral's requests and
Corral's answers back to Docker's shapes (containers.py, streams.py,
images.py, objects.py, system.py)."""
