"""The demo: an emulated Kubernetes API in-process and a scenario that records the example operator.

It exists so that `opreplay demo` and the tests produce realistic recordings (conflict storms, slow
calls, hot reconcile loops) in seconds, with the official kubernetes client over real HTTP and no
cluster.
"""
