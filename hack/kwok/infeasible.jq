# Does the pod's total request exceed one node's allocatable? (kubelet's Infeasible test)
def cpu: tostring | if endswith("m") then .[:-1] | tonumber else tonumber * 1000 end;
def mem: tostring
| if endswith("Ki") then (.[:-2] | tonumber) * 1024
elif endswith("Mi") then (.[:-2] | tonumber) * 1048576
elif endswith("Gi") then (.[:-2] | tonumber) * 1073741824
elif endswith("Ti") then (.[:-2] | tonumber) * 1099511627776
elif endswith("k") then (.[:-1] | tonumber) * 1000
elif endswith("M") then (.[:-1] | tonumber) * 1000000
elif endswith("G") then (.[:-1] | tonumber) * 1000000000
elif endswith("m") then (.[:-1] | tonumber) / 1000
else tonumber end;
([.spec.containers[] | .resources.requests.cpu // "0" | cpu] | add) > @NODE_CPU_MILLI@
or ([.spec.containers[] | .resources.requests.memory // "0" | mem] | add) > @NODE_MEM_BYTES@
