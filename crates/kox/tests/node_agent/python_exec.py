"""exec through the official Python client's stream() (WebSocket, v4.channel.k8s.io):
prints stdout, stderr and the exit code of a command that reads its stdin."""
import sys

from kubernetes import client, config
from kubernetes.stream import stream

kubeconfig, namespace, pod = sys.argv[1:4]
config.load_kube_config(config_file=kubeconfig)
api = client.CoreV1Api()
resp = stream(
    api.connect_get_namespaced_pod_exec,
    pod,
    namespace,
    command=["sh", "-c", "read line; echo got $line; echo oops >&2; exit 3"],
    stdin=True,
    stdout=True,
    stderr=True,
    tty=False,
    _preload_content=False,
)
resp.write_stdin("hello\n")
resp.run_forever(timeout=20)
print("stdout:", resp.read_stdout().strip())
print("stderr:", resp.read_stderr().strip())
print("returncode:", resp.returncode)
resp.close()
