// RUN: ircomp opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: verify_diagnostics.mlir:[[# @LINE + 2]]:3: error: nn.linear: result shape <1x5> does not match the shape implied by its operands, <1x4>
func.func @wrong_shape(%x: tensor<1x3xf32>, %w: tensor<4x3xf32>) -> tensor<1x5xf32> {
  %y = nn.linear %x, %w : (tensor<1x3xf32>, tensor<4x3xf32>) -> tensor<1x5xf32>
  func.return %y : tensor<1x5xf32>
}

// -----

// CHECK: verify_diagnostics.mlir:[[# @LINE + 2]]:45
// CHECK: posit n must be in 2..16, got 17
func.func @bad_posit(%x: tensor<4x!num.posit<17, 1>>) -> tensor<4x!num.posit<17, 1>> {
  func.return %x : tensor<4x!num.posit<17, 1>>
}

// -----

// CHECK: verify_diagnostics.mlir:[[# @LINE + 2]]:3: error: nn.linear: accumulator of !num.fixp<8, 4> x !num.fixp<8, 6> has 10 fraction bits, result type !num.fixp<32, 8> has 8
func.func @bad_acc(%x: tensor<1x3x!num.fixp<8, 4>>, %w: tensor<2x3x!num.fixp<8, 6>>) -> tensor<1x2x!num.fixp<32, 8>> {
  %y = nn.linear %x, %w : (tensor<1x3x!num.fixp<8, 4>>, tensor<2x3x!num.fixp<8, 6>>) -> tensor<1x2x!num.fixp<32, 8>>
  func.return %y : tensor<1x2x!num.fixp<32, 8>>
}

// -----

// CHECK: verify_diagnostics.mlir:[[# @LINE + 3]]:21
// CHECK: expected 2 operand types but had 1
func.func @bad_syntax(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = nn.relu %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}

// -----

// CHECK: verify_diagnostics.mlir:[[# @LINE + 2]]:3: error: nn.sigmoid: needs float tensors, got i8
func.func @float_only(%x: tensor<4xi8>) -> tensor<4xi8> {
  %y = nn.sigmoid %x : (tensor<4xi8>) -> tensor<4xi8>
  func.return %y : tensor<4xi8>
}
