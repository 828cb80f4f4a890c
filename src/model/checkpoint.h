/* checkpoint.h - model directories in the layout of the released BMFM-RNA
 * *.vllm repositories: model.safetensors (state-dict names with prefix
 * "model.", section 3.2 of the reference), config.json (config.h) and, when
 * present, checkpoint_metadata.json whose label_dict ({label: {value: id}},
 * top level or under hyper_parameters) names the classes of each label head.
 *
 * Loading is strict: every tensor of the parameter table must be present with
 * the expected shape and a float dtype (F32; BF16/F16/F64 are converted), and
 * the file may hold no other tensor; each violation is an error naming the
 * tensor. Saving writes the three files atomically (each temp + rename).
 * tokenizers/ is not handled here.
 */
#ifndef BMFM_MODEL_CHECKPOINT_H
#define BMFM_MODEL_CHECKPOINT_H

#include "model/model.h"

#include <stdint.h>

bmfm_status bmfm_checkpoint_load(bmfm_model *m, const char *dir);
/* Only the weights, into an existing model (same table). */
bmfm_status bmfm_checkpoint_load_weights(bmfm_model *m, const char *safetensors_path);
bmfm_status bmfm_checkpoint_save(const bmfm_model *m, const char *dir);
/* PyTorch default initialisation, deterministic for a seed: Linear weights
 * U(+-1/sqrt(fan_in)) (kaiming-uniform, a = sqrt(5)), pooler / transform /
 * MLP-encoder biases U(+-1/sqrt(fan_in)), field- and label-decoder biases 0,
 * embeddings N(0, 1) with the padding row 0, RMSNorm scale 1, LayerNorm 1/0,
 * the ScaleAdapt basis fl32(2 pi scale) * 2^k (or N(0, (2 pi scale)^2) when
 * trainable). */
void bmfm_model_init(bmfm_model *m, uint64_t seed);

#endif
