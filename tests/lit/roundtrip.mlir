// RUN: ircomp opt %s | filecheck %s
// RUN: ircomp opt %s --generic | filecheck %s --check-prefix=GENERIC
// RUN: ircomp opt %s --generic | ircomp opt - > %t.from_generic
// RUN: ircomp opt %s > %t.custom
// RUN: diff %t.from_generic %t.custom

// CHECK-LABEL: func.func @main(%x: tensor<2x3x8x8x!num.fixp<8, 4>>, %w: tensor<4x3x3x3x!num.posit<4, 1>>)
// CHECK-NEXT:    %y = nn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<2x3x8x8x!num.fixp<8, 4>>, tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
// CHECK-NEXT:    %r = nn.relu %y : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
// CHECK-NEXT:    %q = nn.requantize %r {mode = "onnx", scale = array<f64: 6.250000e-02>} : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<8, 4>>
// CHECK-NEXT:    func.return %q

// GENERIC: "nn.conv2d"(%x, %w) <{strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, input_zero_point = 0 : i64, weight_zero_point = 0 : i64}>

func.func @main(%x: tensor<2x3x8x8x!num.fixp<8, 4>>, %w: tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<8, 4>> {
  %y = nn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<2x3x8x8x!num.fixp<8, 4>>, tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
  %r = nn.relu %y : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
  %q = nn.requantize %r {mode = "onnx", scale = array<f64: 0.0625>} : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<8, 4>>
  func.return %q : tensor<2x4x4x4x!num.fixp<8, 4>>
}
