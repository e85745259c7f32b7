# libringattn.so from ctypes: a causal forward on one rank against a
# plain-Python reference, and NULL tensors as an error with a message.
# Usage: python3 ctypes_smoke_test.py path/to/libringattn.so
import ctypes, math, random, sys
lib = ctypes.CDLL(sys.argv[1])
class Config(ctypes.Structure):
    _fields_ = [("layout", ctypes.c_int), ("world", ctypes.c_int32), ("ring_size", ctypes.c_int32),
                ("stripe_width", ctypes.c_int64), ("kv_heads_per_group", ctypes.c_int64),
                ("causal", ctypes.c_int32), ("window_left", ctypes.c_int64), ("window_right", ctypes.c_int64),
                ("cu_seqlens", ctypes.POINTER(ctypes.c_int64)), ("num_cu_seqlens", ctypes.c_int64),
                ("key_lengths", ctypes.POINTER(ctypes.c_int64)), ("num_key_lengths", ctypes.c_int64),
                ("batch", ctypes.c_int64), ("seqlen", ctypes.c_int64), ("num_heads", ctypes.c_int64),
                ("num_kv_heads", ctypes.c_int64), ("head_dim", ctypes.c_int64), ("softmax_scale", ctypes.c_double)]
class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("bytes", ctypes.c_int64), ("dtype", ctypes.c_int),
                ("offset", ctypes.c_int64), ("batch_stride", ctypes.c_int64), ("row_stride", ctypes.c_int64),
                ("head_stride", ctypes.c_int64)]
lib.ringattn_last_error.restype = ctypes.c_char_p
P = ctypes.c_void_p
lib.ringattn_forward.argtypes = [P, P, P, P, P, ctypes.c_int64, P, ctypes.c_int64]
S, D = 6, 4
world = ctypes.c_void_p()
assert lib.ringattn_threads_world_create(1, ctypes.c_double(10.0), ctypes.byref(world)) == 0
c = Config(layout=1, world=1, causal=1, window_left=-1, window_right=-1, batch=1, seqlen=S,
           num_heads=1, num_kv_heads=1, head_dim=D)
ring = ctypes.c_void_p()
rc = lib.ringattn_ring_create(world, 0, ctypes.byref(c), ctypes.byref(ring))
assert rc == 0, lib.ringattn_last_error()
random.seed(1)
vals = lambda: (ctypes.c_float * (S * D))(*[random.gauss(0, 1) for _ in range(S * D)])
q, k, v = vals(), vals(), vals()
t = lambda x: Tensor(ctypes.cast(x, ctypes.c_void_p), S * D * 4, 0, 0, S * D, D, D)
out = (ctypes.c_float * (S * D))(); lse = (ctypes.c_float * S)()
rc = lib.ringattn_forward(ring, ctypes.cast(ctypes.pointer(t(q)), P), ctypes.cast(ctypes.pointer(t(k)), P), ctypes.cast(ctypes.pointer(t(v)), P), ctypes.cast(out, P), S * D * 4, ctypes.cast(lse, P), S)
assert rc == 0, lib.ringattn_last_error()
err = 0
for i in range(S):
    s = [sum(q[i*D+d]*k[j*D+d] for d in range(D)) / math.sqrt(D) for j in range(i + 1)]
    m = max(s); w = [math.exp(x - m) for x in s]; z = sum(w)
    err = max(err, abs(lse[i] - (m + math.log(z))))
    for d in range(D):
        err = max(err, abs(out[i*D+d] - sum(w[j] * v[j*D+d] for j in range(i + 1)) / z))
print("max abs error vs Python reference:", err)
bad = lib.ringattn_forward(ring, None, None, None, ctypes.cast(out, P), 4, ctypes.cast(lse, P), S)
print("NULL tensors ->", bad, lib.ringattn_last_error().decode())
lib.ringattn_ring_destroy(ring); lib.ringattn_world_destroy(world)
assert err < 1e-5
