# admit_all: the simplest cta_admit policy; it admits every request.
#
# Works: always; it reads no context, calls no helper and keeps no state, so
# it admits at the plane's own pace and is the baseline to compare others to.
# Fails: it cannot; but it enforces nothing, so one tenant can fill the GPU.
.name admit_all
.hook cta_admit

    mov %r0, 1      # 1 = admit one CTA now
    exit
