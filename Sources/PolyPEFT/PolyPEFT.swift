// The umbrella module: `import PolyPEFT` brings in every layer of the library. Each layer is its own target, so the
// compiler enforces that a layer uses only those below it:
//
//   PolyPEFTTraining   optimizers, the training step, schedules, the trainer, few-shot, built-in and file data
//   PolyPEFTMethods    the method registry, adapters, routers, LoRA / DoRA, IA3, prefix tuning, Poly / MHR
//   PolyPEFTModels     the module tree, layers, the forward context, MLP, BERT, T5 and their hooks
//   PolyPEFTIO         JSON, safetensors, PEFT and Hugging Face folders, atomic writes (beside the stack)
//   PolyPEFTCore       tensors, kernels, the matmul, random numbers, autograd, losses, parameter groups
@_exported import PolyPEFTCore
@_exported import PolyPEFTIO
@_exported import PolyPEFTModels
@_exported import PolyPEFTMethods
@_exported import PolyPEFTTraining
