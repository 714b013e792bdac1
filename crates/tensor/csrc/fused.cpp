// Fused libtorch operators that tch 0.24 does not wrap: leaky ReLU with a
// chosen slope (tch fixes it at 0.01), Adam as one fused kernel
// (at::_fused_adam_), and the multi-tensor ("foreach") updates used by the
// EMA, the gradient norm and zero_grad.
//
// Tensors cross the boundary as tch's handles (a heap-allocated at::Tensor
// per handle, as in torch-sys). Each function returns NULL on success or a
// malloc'd error message that the caller frees with ds_free_error; no C++
// exception escapes.
#include <ATen/ATen.h>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

typedef at::Tensor *tensor;

static char *ds_error(const char *msg) {
  size_t n = std::strlen(msg) + 1;
  char *out = static_cast<char *>(std::malloc(n));
  if (out != nullptr) std::memcpy(out, msg, n);
  return out;
}

#define DS_PROTECT(body)                       \
  try {                                        \
    body;                                      \
    return nullptr;                            \
  } catch (const c10::Error &e) {             \
    return ds_error(e.what_without_backtrace()); \
  } catch (const std::exception &e) {          \
    return ds_error(e.what());                 \
  } catch (...) {                              \
    return ds_error("unknown C++ exception");  \
  }

static std::vector<at::Tensor> ds_list(tensor *ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*ts[i]);
  return out;
}

extern "C" {

void ds_free_error(char *err) { std::free(err); }

char *ds_leaky_relu(tensor *out, tensor x, double slope) {
  DS_PROTECT(*out = new at::Tensor(at::leaky_relu(*x, slope)))
}

// One Adam step (PyTorch's formula, no amsgrad) over n parameters whose
// gradients are all defined; `step` is a float32 scalar tensor on the
// parameters' device holding the step number after this update.
char *ds_fused_adam(tensor *params, tensor *grads, tensor *exp_avgs, tensor *exp_avg_sqs, int n, tensor step,
                    double lr, double beta1, double beta2, double weight_decay, double eps) {
  DS_PROTECT({
    // The CPU kernel trusts its inputs: check them here, or a mismatched
    // gradient would be read past its end.
    TORCH_CHECK(step->scalar_type() == at::kFloat && step->numel() == 1 && step->device() == params[0]->device(),
                "fused Adam: the step must be one float32 on the parameters' device");
    for (int i = 0; i < n; i++) {
      const at::Tensor &p = *params[i];
      for (const at::Tensor *t : {grads[i], exp_avgs[i], exp_avg_sqs[i]}) {
        TORCH_CHECK(t->defined() && t->sizes() == p.sizes() && t->scalar_type() == p.scalar_type() &&
                        t->device() == p.device() && t->is_contiguous() && p.is_contiguous(),
                    "fused Adam: tensor ", i, " of shape ", p.sizes(),
                    " has a gradient or moment of another shape, type, device or layout");
      }
    }
    std::vector<at::Tensor> steps(n, *step);
    at::_fused_adam_(ds_list(params, n), ds_list(grads, n), ds_list(exp_avgs, n), ds_list(exp_avg_sqs, n), {},
                     steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  })
}

// self[i] <- self[i] + weight * (other[i] - self[i]), in place.
char *ds_foreach_lerp(tensor *self, tensor *other, int n, double weight) {
  DS_PROTECT(at::_foreach_lerp_(ds_list(self, n), ds_list(other, n), at::Scalar(weight)))
}

// The L2 norm of all n tensors together, as a float scalar tensor on their
// device (no host synchronisation); n must be at least 1.
char *ds_total_norm(tensor *out, tensor *ts, int n) {
  DS_PROTECT({
    if (n == 0) throw std::invalid_argument("ds_total_norm needs at least one tensor");
    auto norms = at::_foreach_norm(ds_list(ts, n), 2);
    *out = new at::Tensor(at::linalg_vector_norm(at::stack(norms), 2));
  })
}

// Drops the gradients of n tensors (PyTorch's zero_grad(set_to_none=True)):
// the next backward pass writes fresh gradients instead of adding to zeros.
char *ds_grads_to_none(tensor *ts, int n) {
  DS_PROTECT({
    for (int i = 0; i < n; i++) ts[i]->mutable_grad().reset();
  })
}

}  // extern "C"
