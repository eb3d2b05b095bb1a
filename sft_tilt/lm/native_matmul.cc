// A float32 matrix product for XLA's CPU backend, computed by a BLAS sgemm through XLA's FFI.
//
//   C = op(A) op(B),  op(X) = X or X^T  (attributes trans_a, trans_b),  A, B, C row-major.
//
// The sgemm is not linked: Python hands over its address (native_matmul_set_sgemm) from the OpenBLAS that NumPy
// ships, whose ILP64 CBLAS entry point takes 64-bit sizes.
#include <cstdint>
#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using Sgemm64 = void (*)(int order, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
Sgemm64 g_sgemm = nullptr;

ffi::Error NativeMatmulImpl(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> c,
                            bool trans_a, bool trans_b) {
  if (g_sgemm == nullptr) return ffi::Error::Internal("native_matmul: no sgemm was set");
  auto da = a.dimensions();
  auto db = b.dimensions();
  if (da.size() != 2 || db.size() != 2) return ffi::Error::InvalidArgument("native_matmul: operands must be 2-D");
  const int64_t m = trans_a ? da[1] : da[0], k = trans_a ? da[0] : da[1];
  const int64_t kb = trans_b ? db[1] : db[0], n = trans_b ? db[0] : db[1];
  if (k != kb) return ffi::Error::InvalidArgument("native_matmul: contracted sizes differ");
  auto dc = c->dimensions();
  if (dc.size() != 2 || dc[0] != m || dc[1] != n) return ffi::Error::InvalidArgument("native_matmul: bad result shape");
  if (m == 0 || n == 0) return ffi::Error::Success();
  if (k == 0) {  // an empty sum; sgemm may leave C untouched
    std::memset(c->typed_data(), 0, sizeof(float) * m * n);
    return ffi::Error::Success();
  }
  g_sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, 1.0f, a.typed_data(),
          da[1], b.typed_data(), db[1], 0.0f, c->typed_data(), n);
  return ffi::Error::Success();
}

}  // namespace

extern "C" void native_matmul_set_sgemm(void* sgemm) { g_sgemm = reinterpret_cast<Sgemm64>(sgemm); }

XLA_FFI_DEFINE_HANDLER_SYMBOL(NativeMatmul, NativeMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));
